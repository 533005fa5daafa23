"""Fake students for chapter 1's assignment: what each one submits and the score each test cell earns.

Every submission starts from the released notebook and changes what a real student could change in
JupyterLab or in a text editor. The expected scores are what a fair grader gives: tampering with the
tests or the points changes nothing, and one broken part costs only the parts that depend on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import nbformat

from nbgrader_fixtures import submissions as sub

ASSIGNMENT = "ch01_notation"
POINTS = {"test_net_input": 2, "test_softmax": 2, "test_forward": 3, "test_n_parameters": 2}

# A softmax without the max subtraction: right for small net inputs, overflows for large ones.
NAIVE_SOFTMAX = '''
def softmax(Z):
    exp = np.exp(Z)
    return exp / np.sum(exp, axis=1, keepdims=True)
'''
# Plausible mistakes: columns instead of rows, the logistic sigmoid instead of tanh, a constant that
# happens to match the visible test.
WRONG_SOFTMAX = '''
def softmax(Z):
    exp = np.exp(Z - np.max(Z))
    return exp / np.sum(exp, axis=0, keepdims=True)
'''
WRONG_FORWARD = '''
def forward(X, W_h, b_h, W_out, b_out):
    A_h = 1 / (1 + np.exp(-net_input(X, W_h, b_h)))
    return A_h, softmax(net_input(A_h, W_out, b_out))
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


@dataclass(frozen=True)
class Student:
    name: str
    make: Callable[[nbformat.NotebookNode, dict[str, str]], nbformat.NotebookNode]
    expected: dict[str, float]  # test cell -> points earned

    @property
    def total(self) -> float:
        return sum(self.expected.values())


def _full(release, solution):
    return sub.fill(release, solution)


def _blank(release, solution):
    return release


def _partial(release, solution):
    return sub.fill(release, {"net_input": solution["net_input"], "softmax": NAIVE_SOFTMAX,
                              "forward": solution["forward"]})


def _wrong(release, solution):
    return sub.fill(release, {"net_input": solution["net_input"], "softmax": WRONG_SOFTMAX,
                              "forward": WRONG_FORWARD, "n_parameters": HARD_CODED_COUNT})


def _edits_tests(release, solution):
    notebook = _partial(release, solution)
    for cell in notebook.cells:
        if sub.is_test(cell):
            cell.source = "pass"
            cell.metadata.nbgrader["points"] = 100
    return notebook


def _deletes_tests(release, solution):
    notebook = _partial(release, solution)
    sub.delete_cell(notebook, "test_softmax")
    sub.delete_cell(notebook, "test_n_parameters")
    return notebook


def _rebinds_names(release, solution):
    return sub.fill(release, {**solution, "net_input": REBINDS_NAMES})


def _infinite_loop(release, solution):
    return sub.fill(release, {**solution, "n_parameters": "while True:\n    pass\n" + solution["n_parameters"]})


def _import_error(release, solution):
    return sub.fill(release, {**solution, "net_input": "import nonexistent_module\n" + solution["net_input"]})


def _huge_output(release, solution):
    # 50 MB on one line: more than nbgrader's line limit alone would catch
    return sub.fill(release, {**solution, "net_input": solution["net_input"] + "\nprint('x' * 50_000_000)\n"})


def _scores(**earned: float) -> dict[str, float]:
    return {cell: earned.get(cell, 0.0) for cell in POINTS}


FULL = dict(POINTS)
STUDENTS = [
    Student("full", _full, FULL),
    Student("blank", _blank, _scores()),
    Student("partial", _partial, _scores(test_net_input=2, test_forward=3)),
    Student("wrong", _wrong, _scores(test_net_input=2)),
    Student("edits_tests", _edits_tests, _scores(test_net_input=2, test_forward=3)),
    Student("deletes_tests", _deletes_tests, _scores(test_net_input=2, test_forward=3)),
    # the test cells' own `import numpy as np` undo the rebinding; forward fails on its net_input
    Student("rebinds_names", _rebinds_names, _scores(test_softmax=2, test_n_parameters=2)),
    Student("infinite_loop", _infinite_loop, {**FULL, "test_n_parameters": 0.0}),
    # net_input never gets defined, so forward (which calls it) fails too
    Student("import_error", _import_error, _scores(test_softmax=2, test_n_parameters=2)),
    Student("huge_output", _huge_output, FULL),
]
