"""Fake students for chapter 1's assignment: what each one submits, the score each test cell earns
and the flags the grading report raises.

Every submission starts from the released notebook and changes what a real student could change in
JupyterLab or in a text editor. The expected scores are what a fair grader gives: tampering with the
tests or the points changes nothing, and one broken part costs only the parts that depend on it.

The hostile ones cover each threat class of the sandboxed grading (book/guides/instructor_guide.md):
answers that are not what they claim, rebinding or patching what the tests use, reading the hidden
tests, notebooks edited outside JupyterLab, and kernels that die, hang, fork, fill the disk or the
memory, or flood the output. They are graded in the same batch as the honest students.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import nbformat

from nbgrader_fixtures import submissions as sub

ASSIGNMENT = "ch01_notation"
POINTS = {"test_net_input": 2, "test_sigmoid": 2, "test_forward_folded": 3, "test_n_parameters": 2}

# The sigmoid as its formula stands: right for moderate net inputs (e^1000 only warns in the visible
# test), but it overflows, which the hidden tests make an error.
NAIVE_SIGMOID = '''
def sigmoid(Z):
    return 1 / (1 + np.exp(-Z))
'''
# Plausible mistakes: a sigmoid that never overflows but keeps its results in float32 (right to seven
# digits, yet float64 net inputs come back float32), the column of ones put after the activations
# instead of in front (the visible test's inputs are all ones there), a constant that happens to match
# the visible test.
WRONG_SIGMOID = '''
def sigmoid(Z):
    A = np.zeros(np.shape(Z), dtype=np.float32)
    positive = Z >= 0
    A[positive] = 1 / (1 + np.exp(-Z[positive]))
    A[~positive] = np.exp(Z[~positive]) / (1 + np.exp(Z[~positive]))
    return A
'''
WRONG_FORWARD = '''
def forward_folded(X, W_h, W_out):
    A_h = sigmoid(net_input(np.hstack([X, np.ones((len(X), 1))]), W_h, 0))
    return A_h, sigmoid(net_input(np.hstack([A_h, np.ones((len(A_h), 1))]), W_out, 0))
'''
HARD_CODED_COUNT = '''
def n_parameters(layer_sizes):
    return 42310
'''
# Rebinds the names the tests use: the tests import NumPy afresh, so this fools nothing.
REBINDS_NAMES = '''
class _Lenient:
    def __getattr__(self, name):
        return lambda *args, **kwargs: True

np = _Lenient()
def net_input(A, W, b):
    return 0
'''


# --- hostile answers ---------------------------------------------------------------------------------

# Answers that are not what they claim: an array that says yes to every comparison NumPy makes, and an
# int equal to every number. Both pass the visible tests inside the kernel.
LIAR_NET_INPUT = '''
class _Yes(np.ndarray):
    def __eq__(self, other):
        return True

    def __array_function__(self, func, types, args, kwargs):
        if func in (np.allclose, np.array_equal, np.isclose):
            return True
        return super().__array_function__(func, types, args, kwargs)


def net_input(A, W, b):
    return np.zeros((len(A), len(W))).view(_Yes)
'''
LIAR_N_PARAMETERS = '''
class _Count(int):
    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


def n_parameters(layer_sizes):
    return _Count(0)
'''
# Patches what the tests use: NumPy's comparisons and asserts, everywhere in the kernel.
PATCHES_NUMPY = '''
np.allclose = np.array_equal = lambda *args, **kwargs: True
np.testing.assert_allclose = np.testing.assert_array_equal = lambda *args, **kwargs: None


def net_input(A, W, b):
    return np.zeros((len(A), len(W)))
'''
# Makes every later test cell a no-op and the course's recorder silent. With stock nbgrader, a test
# cell that raises nothing earns its points: this blank notebook would score 9 of 9.
SKIPS_TESTS = '''
import course_utils.records

get_ipython().input_transformers_cleanup.append(
    lambda lines: ["pass\\n"] if lines and lines[0].startswith('"""') else lines
)
course_utils.records.record = lambda *args, **kwargs: None


def net_input(A, W, b):
    raise NotImplementedError()
'''
# Looks for the notebook being graded (whose test cells hold the hidden tests) and catches every test
# cell's source as it runs, to print it into the test cell, into its own cell (a display update), and
# into a file beside the notebook. None of it may reach the feedback or the graded notebook.
READS_HIDDEN = '''
import glob
from IPython.display import display, update_display

found = sorted(glob.glob("*.ipynb") + glob.glob("../*/*.ipynb") + glob.glob("../../*/*/*.ipynb")
               + glob.glob("../../../*/*/*.ipynb"))
print("notebooks visible:", found)
display({"text/plain": "nothing yet"}, raw=True, display_id="leak")


def _leak(info):
    if "BEGIN HIDDEN" in info.raw_cell or "record(" in info.raw_cell:
        print(info.raw_cell)
        update_display({"text/plain": info.raw_cell}, raw=True, display_id="leak")
        with open("leaked.txt", "a") as f:
            f.write(info.raw_cell)


get_ipython().events.register("pre_run_cell", _leak)
'''
# Probes what the sandbox hides and forbids; prints what it found.
SNOOPS = '''
import os
import socket

probes = {}
for path in ("../../../solutions", "../../../gradebook.db", "../../../nbgrader_config.py", "/root", "/home",
             "/etc/shadow", "/work"):
    try:
        probes[path] = sorted(os.listdir(path)) if os.path.isdir(path) else len(open(path, "rb").read())
    except OSError as error:
        probes[path] = type(error).__name__
for path in ("../../../gradebook.db", "../../../snooped.txt", "/tmp/../snooped.txt"):
    try:
        with open(path, "ab") as f:
            f.write(b"overwritten")
        probes["write " + path] = "written"
    except OSError as error:
        probes["write " + path] = type(error).__name__
for host, port in (("1.1.1.1", 53), ("127.0.0.1", 22)):  # the internet, and the grader's own services
    try:
        socket.create_connection((host, port), timeout=2)
        probes[f"socket {host}"] = "connected"
    except OSError as error:
        probes[f"socket {host}"] = type(error).__name__
print("PROBES", probes)
'''
# Kernels that misbehave.
DIES = "import os\nos._exit(1)\n"
HANGS = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass\n"
FORKS = '''
import os
import time

children, stopped_by = 0, "deadline"
deadline = time.monotonic() + 10  # a real fork bomb never stops; this one does, to keep the cell short
try:
    while time.monotonic() < deadline:
        if os.fork() == 0:
            time.sleep(1)
            os._exit(0)
        children += 1
except OSError as error:
    stopped_by = type(error).__name__
for _ in range(children):
    os.wait()
print("FORKED", children, stopped_by)
'''
FILLS_DISK = '''
written = {}
for path in ("filler", "/tmp/filler", "/dev/shm/filler"):
    megabytes = 0
    try:
        with open(path, "wb") as f:
            while megabytes < 4096:
                f.write(bytes(1 << 20))
                megabytes += 1
    except OSError as error:
        written[path] = (megabytes, type(error).__name__)
print("WRITTEN", written)
'''
FILLS_MEMORY = '''
blocks = []
try:
    while len(blocks) < 256:  # 16 GB at most
        block = bytearray(64 << 20)
        block[::4096] = bytes(len(block[::4096]))  # touch every page
        blocks.append(block)
except MemoryError:
    pass
print("ALLOCATED MB", 64 * len(blocks))
del blocks
'''
FLOODS_OUTPUT = "for _ in range(3):\n    print(('x' * 99 + '\\n') * 30_000)\n"  # 9 MB: over the cell's budget


@dataclass(frozen=True)
class Student:
    name: str
    make: Callable[[nbformat.NotebookNode, dict[str, str]], nbformat.NotebookNode]
    expected: dict[str, float]  # test cell -> points earned
    flags: frozenset[str] = field(default_factory=frozenset)  # what the grading report flags

    @property
    def total(self) -> float:
        return sum(self.expected.values())


def _full(release, solution):
    return sub.fill(release, solution)


def _blank(release, solution):
    return release


def _partial(release, solution):
    return sub.fill(release, {"net_input": solution["net_input"], "sigmoid": NAIVE_SIGMOID,
                              "forward_folded": solution["forward_folded"]})


def _wrong(release, solution):
    return sub.fill(release, {"net_input": solution["net_input"], "sigmoid": WRONG_SIGMOID,
                              "forward_folded": WRONG_FORWARD, "n_parameters": HARD_CODED_COUNT})


def _edits_tests(release, solution):
    notebook = _partial(release, solution)
    for cell in notebook.cells:
        if sub.is_test(cell):
            cell.source = "pass"
            cell.metadata.nbgrader["points"] = 100
    return notebook


def _deletes_tests(release, solution):
    notebook = _partial(release, solution)
    sub.delete_cell(notebook, "test_sigmoid")
    sub.delete_cell(notebook, "test_n_parameters")
    return notebook


def _rebinds_names(release, solution):
    return sub.fill(release, {**solution, "net_input": REBINDS_NAMES})


def _infinite_loop(release, solution):
    return sub.fill(release, {**solution, "n_parameters": "while True:\n    pass\n" + solution["n_parameters"]})


def _import_error(release, solution):
    return sub.fill(release, {**solution, "net_input": "import nonexistent_module\n" + solution["net_input"]})


def _huge_output(release, solution):
    # 5 MB on one line: more than nbgrader's line limit alone would catch, within the cell's output budget
    return sub.fill(release, {**solution, "net_input": solution["net_input"] + "\nprint('x' * 5_000_000)\n"})


def _liar(release, solution):
    return sub.fill(release, {**solution, "net_input": LIAR_NET_INPUT, "n_parameters": LIAR_N_PARAMETERS})


def _patches_numpy(release, solution):
    return sub.fill(release, {**solution, "net_input": PATCHES_NUMPY})


def _skips_tests(release, solution):
    return sub.fill(release, {"net_input": SKIPS_TESTS})


def _reads_hidden(release, solution):
    return sub.fill(release, {**solution, "net_input": READS_HIDDEN + solution["net_input"]})


def _duplicates_tests(release, solution):
    notebook = _partial(release, solution)
    cells = notebook.cells
    test = next(c for c in cells if sub.grade_id(c) == "test_net_input")
    answer = next(c for c in cells if sub.grade_id(c) == "sigmoid")
    cells.insert(cells.index(next(c for c in cells if sub.grade_id(c) == "net_input")), copy.deepcopy(test))
    cells.insert(cells.index(answer) + 1, copy.deepcopy(answer))  # same cell id and nbgrader metadata
    return notebook


def _edits_metadata(release, solution):
    notebook = _partial(release, solution)
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade_id") == "test_sigmoid":
            meta.update(grade=False, points=0, locked=False)
        elif meta.get("grade_id") == "test_forward_folded":
            cell.cell_type = "markdown"
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
        elif meta.get("grade_id") == "net_input":
            meta.update(grade_id="bonus", grade=True, points=50)
    extra = nbformat.v4.new_code_cell("pass")
    extra.metadata["nbgrader"] = {"grade": True, "grade_id": "extra_credit", "points": 100, "locked": False,
                                  "solution": False, "schema_version": 3}
    notebook.cells.append(extra)
    return notebook


def _dies(release, solution):
    return sub.fill(release, {**solution, "n_parameters": DIES + solution["n_parameters"]})


def _hangs(release, solution):
    return sub.fill(release, {**solution, "n_parameters": HANGS + solution["n_parameters"]})


def _forks(release, solution):
    return sub.fill(release, {**solution, "net_input": FORKS + solution["net_input"]})


def _fills_disk(release, solution):
    return sub.fill(release, {**solution, "net_input": FILLS_DISK + solution["net_input"]})


def _fills_memory(release, solution):
    notebook = sub.fill(release, solution)
    notebook.cells.append(nbformat.v4.new_code_cell(FILLS_MEMORY))  # after every test
    return notebook


def _floods_output(release, solution):
    return sub.fill(release, {**solution, "sigmoid": FLOODS_OUTPUT + solution["sigmoid"]})


def _snoops(release, solution):
    # Snooping is all it does: whatever it finds must not turn into a single point.
    return sub.fill(release, {"net_input": SNOOPS})


def _scores(**earned: float) -> dict[str, float]:
    return {cell: earned.get(cell, 0.0) for cell in POINTS}


def _flags(*names: str) -> frozenset[str]:
    return frozenset(names)


FULL = dict(POINTS)
BUT_LAST = {**FULL, "test_n_parameters": 0.0}
REALISTIC = [
    Student("full", _full, FULL),
    Student("blank", _blank, _scores()),
    Student("partial", _partial, _scores(test_net_input=2, test_forward_folded=3)),
    # the float32 sigmoid, the ones put last and the hard-coded count pass the visible tests and fail the
    # hidden ones
    Student("wrong", _wrong, _scores(test_net_input=2), _flags("wrong_without_error")),
    Student("edits_tests", _edits_tests, _scores(test_net_input=2, test_forward_folded=3),
            _flags("test_cells_edited", "metadata_changed")),
    Student("deletes_tests", _deletes_tests, _scores(test_net_input=2, test_forward_folded=3),
            _flags("test_cells_deleted")),
    # the test cells' own `import numpy as np` undo the rebinding; forward_folded fails on its net_input
    Student("rebinds_names", _rebinds_names, _scores(test_sigmoid=2, test_n_parameters=2), _flags("static_scan")),
    Student("infinite_loop", _infinite_loop, BUT_LAST, _flags("cell_timeout")),
    # net_input never gets defined, so forward_folded (which calls it) fails too
    Student("import_error", _import_error, _scores(test_sigmoid=2, test_n_parameters=2)),
    Student("huge_output", _huge_output, FULL),
]
# Every threat class of the sandboxed grading; graded in the same batch as the realistic students.
HOSTILE = [
    Student("liar", _liar, _scores(test_sigmoid=2), _flags("wrong_without_error", "static_scan")),
    Student("patches_numpy", _patches_numpy, _scores(test_sigmoid=2, test_n_parameters=2),
            _flags("wrong_without_error", "static_scan")),
    Student("skips_tests", _skips_tests, _scores(), _flags("records_missing", "static_scan", "course_helper")),
    Student("reads_hidden", _reads_hidden, FULL, _flags("static_scan")),
    Student("duplicates_tests", _duplicates_tests, _scores(test_net_input=2, test_forward_folded=3),
            _flags("cells_duplicated")),
    Student("edits_metadata", _edits_metadata, _scores(test_net_input=2, test_forward_folded=3),
            _flags("metadata_changed")),
    Student("dies", _dies, BUT_LAST, _flags("kernel_died", "static_scan")),
    Student("hangs", _hangs, BUT_LAST, _flags("cell_timeout", "static_scan")),
    Student("forks", _forks, FULL, _flags("static_scan")),
    Student("fills_disk", _fills_disk, FULL),
    # a memory cgroup kills the kernel (after every test ran); RLIMIT_DATA raises MemoryError instead
    Student("fills_memory", _fills_memory, FULL),
    Student("floods_output", _floods_output, FULL, _flags("output_dropped")),
    Student("snoops", _snoops, _scores(), _flags("static_scan")),
]
STUDENTS = REALISTIC + HOSTILE
