"""The grading package on its own: the sandbox, the trusted checks, the scan, one submission graded.

The end-to-end proofs (a batch of honest and hostile students through nbgrader) are in
tests/test_nbgrader_pipeline.py; these are the pieces, with a few sandboxed kernels started directly.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbgrader_fixtures import submissions as sub
from traitlets.config import Config

from course_utils.records import RECORD_MIME, plain
from grading import checks, sandbox, scan
from grading.api import grade_submission
from grading.preprocessors import run_sandboxed

REPO_ROOT = Path(__file__).resolve().parents[1]
CH01 = REPO_ROOT / "solutions" / "ch01_notation" / "ch01_notation.ipynb"


def _record_cell(*records, error: str | None = None, grade_id="test_x"):
    outputs = [nbformat.v4.new_output("display_data", data={RECORD_MIME: payload}) for payload in records]
    if error:
        outputs.append(nbformat.v4.new_output("error", ename=error, evalue="", traceback=[]))
    cell = nbformat.v4.new_code_cell('"""x: a test"""', outputs=outputs)
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": grade_id, "points": 2}
    return cell


def _payload(name, value, **options):
    return {"name": name, "value": plain(value), "rtol": 1e-5, "atol": 1e-8, "rule": "equal", "params": {},
            "message": None, **options}


# --- records and the trusted comparison ----------------------------------------------------------------


def test_plain_data_has_no_room_for_objects_that_pretend():
    class Yes(np.ndarray):
        def __eq__(self, other):
            return True

    assert plain(np.zeros(3).view(Yes)) == {"array": [0.0, 0.0, 0.0], "shape": [3], "dtype": "<f8"}
    assert plain(True) == {"bool": True} and plain(np.int64(3)) == {"int": 3}
    assert plain((8, (2, 28, 28)))["list"][1]["array"] == [2, 28, 28]
    assert plain([float("nan"), 1.0])["array"] == ["nan", 1.0]
    assert plain(object()) == {"unplain": "object"}


def test_records_match_by_value_and_tolerance_only():
    reference, _ = checks.read_records(_record_cell(_payload("Z", [1.0, 2.0]), _payload("n", 3),
                                                    _payload("ok", True)))
    good = _record_cell(_payload("Z", [1.0, 2.0 + 1e-9]), _payload("n", 3), _payload("ok", True))
    assert checks.judge(good, reference).passed
    for wrong in ([1.0, 2.1], [1.0], [[1.0, 2.0]]):
        verdict = checks.judge(_record_cell(_payload("Z", wrong), _payload("n", 3), _payload("ok", True)), reference)
        assert not verdict.passed and verdict.wrong == ["Z"]
    # a student's record cannot loosen the tolerance: only the reference's counts
    loose = _record_cell(_payload("Z", [1.0, 3.0], rtol=1e9), _payload("n", 3), _payload("ok", True))
    assert not checks.judge(loose, reference).passed
    assert not checks.judge(_record_cell(_payload("Z", [1.0, 2.0]), _payload("n", 3.0), _payload("ok", True)),
                            reference).passed, "3.0 is not the int 3"
    assert not checks.judge(_record_cell(_payload("Z", [1.0, 2.0]), _payload("n", 3), _payload("ok", 1)),
                            reference).passed, "1 is not True"


def test_missing_invalid_and_erroring_records_fail():
    reference, _ = checks.read_records(_record_cell(_payload("Z", [1.0])))
    missing = checks.judge(_record_cell(), reference)
    assert not missing.passed and missing.missing == ["Z"] and not missing.error
    invalid = _record_cell({"name": "Z", "value": {"array": [1.0], "shape": [2], "dtype": "<f8"}})
    verdict = checks.judge(invalid, reference)
    assert not verdict.passed and verdict.invalid == 1
    erroring = checks.judge(_record_cell(_payload("Z", [1.0]), error="AssertionError"), reference)
    assert not erroring.passed and erroring.reasons == ["the test raised AssertionError"]
    odd = checks.judge(_record_cell(_payload("Z", [1.0]), error="HiddenSourceInTheName"), reference)
    assert odd.reasons == ["the test raised an exception"], "a made-up exception name is not shown"


def _model(kernel_scale: float, activation: str = "softmax", n_features: int = 784):
    rng = np.random.default_rng(7)
    return [[rng.normal(scale=kernel_scale, size=(n_features, 10)).astype("float32"), np.zeros(10, "float32"),
             activation]]


def test_model_accuracy_is_measured_by_the_judge_never_taken_from_the_kernel():
    from grading import measure

    X, labels = measure.dataset({"images": "mnist_test_centred", "n_train": 200, "n_test": 100})
    params = {"model": "model", "images": "mnist_test_centred", "n_train": 200, "n_test": 100, "min": 0.0,
              "slack": 0.002}
    reference, _ = checks.read_records(_record_cell(
        _payload("model", _model(0.1), rule="data"), _payload("acc", 0.5, rule="model_accuracy", params=params)))
    model = _model(0.1)
    honest = float(np.mean(np.argmax(X @ model[0][0], axis=1) == labels))

    def student(layers, accuracy):
        return _record_cell(_payload("model", layers), _payload("acc", accuracy))

    assert checks.judge(student(model, honest), reference).passed, "a model's honest accuracy"
    zeroed = _model(0.0)  # every output equal: every prediction is class 0
    forged = checks.judge(student(zeroed, 1.0), reference)
    assert not forged.passed and forged.measured == [
        f"acc: 1 claimed, the recorded model scores {np.mean(labels == 0):.4g}"]
    assert not checks.judge(student(_model(0.1, "relu"), honest), reference).passed, "another network"
    assert not checks.judge(student(_model(0.1, n_features=5), honest), reference).passed, "wrong shapes"
    assert not checks.judge(student([[np.zeros((784, 10)), np.zeros(10), "exec"]], 0.1), reference).passed
    assert not checks.judge(student("a model", honest), reference).passed
    strict = {**params, "min": 1.01}
    reference_strict, _ = checks.read_records(_record_cell(
        _payload("model", model, rule="data"), _payload("acc", 0.5, rule="model_accuracy", params=strict)))
    assert not checks.judge(student(model, honest), reference_strict).passed, "below the minimum"


def test_model_outputs_are_computed_by_the_judge_on_inputs_of_its_own():
    params = {"seed": 3, "n": 4}
    reference, _ = checks.read_records(_record_cell(_payload("m", _model(0.1, n_features=6), rule="model_outputs",
                                                             params=params, rtol=1e-4, atol=1e-6)))
    assert checks.judge(_record_cell(_payload("m", _model(0.1, n_features=6))), reference).passed
    assert not checks.judge(_record_cell(_payload("m", _model(0.2, n_features=6))), reference).passed
    assert not checks.judge(_record_cell(_payload("m", _model(0.1, "sigmoid", 6))), reference).passed


def test_failed_verdicts_show_names_and_messages_never_student_text():
    reference, _ = checks.read_records(_record_cell(_payload("Z", [1.0], message="wrong for other inputs")))
    verdict = checks.judge(_record_cell(_payload("Z", [2.0])), reference, title="net_input: values")
    [output] = checks.feedback_outputs(verdict, 2)
    assert output["evalue"] == "net_input: values: 0 of 2 points. wrong for other inputs."
    assert checks.feedback_outputs(checks.judge(_record_cell(_payload("Z", [1.0])), reference), 2) == []


def test_every_test_cell_of_every_solution_records_in_its_hidden_tests():
    for path in sorted((REPO_ROOT / "solutions").glob("*/*.ipynb")):
        for cell in sub.read(path).cells:
            if sub.is_test(cell):
                hidden = cell.source.split("### BEGIN HIDDEN TESTS", 1)
                assert len(hidden) == 2 and "record(" in hidden[1], f"{path.name}: {sub.grade_id(cell)}"


def test_scan_flags_what_the_exercises_never_need():
    assert scan.scan_source("def f(x):\n    return x @ x.T\n") == []
    found = scan.scan_source("import numpy as np\nnp.allclose = lambda *a: True\nget_ipython().events\n"
                             "class A:\n    def __eq__(self, o):\n        return True\n")
    assert found == ["defines __eq__", "rebinds np.allclose", "uses .events", "uses get_ipython"]
    assert scan.scan_source("model.compile(optimizer='sgd')\nopen('x')\n") == []
    # rebinding what every later cell shares, through an alias, an imported class or type()
    assert scan.scan_source("import keras as k\nk.Model.predict = lambda self, X: X\n") == [
        "rebinds k.Model.predict"]
    assert scan.scan_source("from keras import Model\nModel.predict, x = None, 1\nsetattr(Model, 'fit', 0)\n"
                            "type(model).evaluate = None\n") == [
        "rebinds Model.predict", "rebinds type(model).evaluate", "uses setattr"]
    assert scan.scan_source("model.stop_training = True\nhistory.history['loss'] = []\n") == []


# --- the sandbox command and the preflight ---------------------------------------------------------------


def test_bwrap_command_drops_everything_and_orders_tmp_first(tmp_path):
    (tmp_path / "data.csv").write_text("1")
    (tmp_path / "graded.ipynb").write_text("{}")
    spec = sandbox.SandboxSpec(python=sys.executable, read_only=("/opt/venv",), course_lib="/src/course_utils",
                               env={"PATH": "/usr/bin"})
    private = Path("/tmp/grading-kernel-x")
    command = sandbox.bwrap_command(spec, tmp_path, [private], ["python", "-m", "ipykernel_launcher"])
    text = " ".join(command)
    for flags in ("--unshare-all --unshare-user --uid 65534 --gid 65534 --disable-userns --cap-drop ALL",
                  "--die-with-parent --new-session", "--clearenv"):
        assert flags in text
    assert command.index("/tmp") < command.index(str(private)), "a bind below /tmp must follow its tmpfs"
    assert f"--ro-bind {tmp_path / 'data.csv'}" in text and "graded.ipynb" not in text
    assert f"--bind {private} {private}" in text and text.count("--bind ") == 1, "one writable bind"
    assert "--size" in command[command.index(str(tmp_path)) - 3], "the working folder is a capped tmpfs"
    assert text.index("--remount-ro /") > text.index(f"--bind {private}"), "the root is read-only at the end"
    limits = command[command.index("prlimit"):]
    assert "--nproc=512" in limits and "--data=2147483648" in limits and not any("--as" in a for a in limits)


def _fake_bwrap(folder: Path, message: str) -> None:
    (folder / "bwrap").write_text(f"#!/bin/sh\necho '{message}' >&2\nexit 1\n")
    (folder / "bwrap").chmod(0o755)


def test_preflight_says_why_and_what_to_do(tmp_path, monkeypatch):
    _fake_bwrap(tmp_path, "bwrap: No permissions to creating new namespace, likely because the kernel "
                          "does not allow non-privileged user namespaces.")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    spec = sandbox.SandboxSpec(python=sys.executable, read_only=(), course_lib=None, env={},
                               use_cgroup=False, require_process_limit=False)
    with pytest.raises(sandbox.SandboxUnavailableError) as caught:
        sandbox.check_sandbox(spec)
    message = str(caught.value)
    assert "user namespaces" in message and "sysctl" in message and "--Sandbox.enabled=False" in message
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(sandbox.SandboxUnavailableError, match="not installed"):
        sandbox.check_sandbox(spec)


def test_cgroups_are_created_only_where_writable(tmp_path):
    assert sandbox._try_folder(tmp_path / "missing" / "group", {"pids.max": "5"}) is False
    folder = tmp_path / "group"
    assert sandbox._try_folder(folder, {"pids.max": "5"}) is False and not folder.exists(), "no such setting"


# --- kernels in the sandbox ------------------------------------------------------------------------------

PROBE = """
import os, socket, resource
print("UID", os.getuid())
print("CWD", sorted(os.listdir(".")))
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2)
    print("NET connected")
except OSError as error:
    print("NET", type(error).__name__)
print("CAPS", open("/proc/self/status").read().split("CapEff:")[1].split()[0])
print("ROOT", sorted(os.listdir("/")))
try:
    open("/usr/evil", "w")
except OSError as error:
    print("USR", type(error).__name__)
"""


@pytest.mark.timeout(300)
def test_a_kernel_in_the_sandbox_sees_and_reaches_nothing(tmp_path):
    (tmp_path / "data.csv").write_text("1")
    (tmp_path / "graded.ipynb").write_text("{}")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(PROBE)])
    executed, _ = run_sandboxed(nb, workdir=tmp_path)
    text = "".join(o.get("text", "") for o in executed.cells[0].outputs)
    assert "UID 65534" in text and "CWD ['data.csv']" in text, text
    assert "NET connected" not in text and "CAPS 0000000000000000" in text, text
    assert "USR OSError" in text, text
    assert not (tmp_path / "evil").exists()


# A submission that tries to reach whatever else runs: the kernel started ahead for the next submission.
HOSTILE = """
import os, pathlib, signal, sys
print("PIDS", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
print("TMP", sorted(os.listdir("/tmp")), "CWD", sorted(os.listdir(".")))
for path in ("/tmp/planted", "planted", "/dev/shm/planted"):
    pathlib.Path(path).write_text("x")
sys.modules["numpy"].planted = True
os.environ["PLANTED"] = "x"
own = {int(task) for task in os.listdir("/proc/self/task")}  # its threads' ids would kill itself
for pid in range(1, 4096):
    if pid not in own:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
print("STILL HERE")
"""
NEXT = """
import os, sys
print("PRELOADED", "numpy" in sys.modules, "BOUND", "numpy" in dir() or "np" in dir())
print("PLANTED", hasattr(sys.modules["numpy"], "planted"), "PLANTED" in os.environ,
      [p for p in ("/tmp/planted", "planted", "/dev/shm/planted") if os.path.exists(p)])
print("CWD", sorted(os.listdir(".")), "TMP", sorted(os.listdir("/tmp")))
"""


def _printed(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))


@pytest.mark.timeout(300)
def test_a_kernel_started_ahead_is_fresh_and_out_of_reach_of_the_submission_before_it():
    from grading.kernel import KernelPool

    pool = KernelPool()
    try:
        executed, _ = run_sandboxed(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(HOSTILE)]),
                                    kernels=pool, preload=("numpy",))
        [ahead] = pool._waiting  # started while the hostile submission ran, before it ran anything
        launcher, folders = ahead.provisioner.process, (ahead._private_dir.name, ahead.own_workdir.name)
        hostile = _printed(executed)
        assert "PIDS [1, 2]" in hostile and "STILL HERE" in hostile, hostile  # bubblewrap's init and itself
        # its /tmp holds its own connection folder and working folder, never those of the kernel ahead
        assert "CWD []" in hostile and not any(name in hostile for name in folders), hostile
        executed, _ = run_sandboxed(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(NEXT)]),
                                    kernels=pool, preload=("numpy",))
        text = _printed(executed)
        assert all(name in text for name in folders), "the kernel started ahead ran it"
        assert launcher.wait(timeout=60) is not None and not ahead.has_kernel, "and ended with it"
        assert ahead not in pool._waiting, "never to be handed out again"
        assert "PRELOADED True BOUND False" in text, text  # imported ahead; no name bound in the notebook
        assert "PLANTED False False []" in text and "CWD []" in text, text
    finally:
        pool.close()


def test_only_the_assignments_own_imports_of_allowed_packages_are_preloaded():
    from grading.kernel import Sandbox, preload_modules

    numpy_only = preload_modules(sub.read(CH01), Sandbox().preload)
    assert "numpy" in numpy_only and "course_utils.records" in numpy_only
    assert not any(m.partition(".")[0] in ("tensorflow", "keras") for m in numpy_only), numpy_only
    training = preload_modules(sub.read(REPO_ROOT / "solutions" / "ch06_training" / "ch06_training.ipynb"),
                               Sandbox().preload)
    assert "keras" in training
    assert preload_modules(sub.read(CH01), []) == ()


@pytest.mark.timeout(300)
def test_the_wall_clock_stops_a_notebook_that_runs_too_long(tmp_path):
    config = Config({"Sandbox": {"wall_clock": 3.0}, "ExecutePreprocessor": {"timeout": 60}})
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time\ntime.sleep(120)"),
                                         nbformat.v4.new_code_cell("print('never')")])
    executed, resources = run_sandboxed(nb, config=config, workdir=tmp_path)
    events = resources["grading"]["events"]
    assert [flag for flag, _ in events] == ["wall_clock"], events
    assert executed.cells[1].outputs[0].ename == "NotRun"


# One CPU-second of work, and how long the machine took to give it.
CPU_SECOND = ("import time\nwall, cpu = time.monotonic(), time.process_time()\n"
              "while time.process_time() - cpu < 1.0:\n    pass\nprint('slowed', time.monotonic() - wall > 2)")


@contextlib.contextmanager
def _sharing_one_core_with(hogs: int):
    """This process (and the kernels it starts) on one core, with ``hogs`` busy processes on it too."""
    threads = [int(tid) for tid in os.listdir("/proc/self/task")]  # affinity is per thread
    before = os.sched_getaffinity(0)
    for tid in threads:
        os.sched_setaffinity(tid, {min(before)})
    # each in a session of its own, as the kernel is: Linux shares a core between sessions first
    processes = [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
                 for _ in range(hogs)]
    try:
        yield
    finally:
        for process in processes:
            process.kill()
            process.wait()
        for tid in os.listdir("/proc/self/task"):
            os.sched_setaffinity(int(tid), before)


@pytest.mark.timeout(300)
def test_a_busy_machine_changes_no_outcome_and_a_reached_limit_is_flagged(tmp_path):
    # Three busy processes share the kernel's core: it gets about a quarter of it, so one CPU-second of
    # work takes about 4 s. A 2 s limit on the wall clock would stop that cell; the limit counts CPU
    # time (2 s per core, here 1 core), so only the endless loop is stopped, and flagged.
    config = Config({"ExecutePreprocessor": {"timeout": 2}})
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CPU_SECOND),
                                         nbformat.v4.new_code_cell("while True:\n    pass"),
                                         nbformat.v4.new_code_cell("print('next')")])
    with _sharing_one_core_with(hogs=3):
        executed, resources = run_sandboxed(nb, config=config, workdir=tmp_path)
    outputs = [[o.get("text") or o.get("ename") for o in cell.outputs] for cell in executed.cells]
    assert outputs == [["slowed True\n"], ["CellTimeoutError"], ["next\n"]]
    assert resources["grading"]["events"] == [
        ("cell_timeout", "cell 2: stopped after 2 seconds of CPU time (2 per core)")]


@pytest.mark.timeout(600)
def test_grade_submission_grades_one_notebook_without_a_gradebook(tmp_path):
    source = sub.read(CH01)
    release_like = sub.read(REPO_ROOT / "exercises" / "ch01_notation" / "ch01_notation.ipynb")
    answers = sub.solution_answers(source)
    answers["n_parameters"] = "def n_parameters(layer_sizes):\n    return 42310\n"
    submission = nbformat.writes(sub.fill(release_like, answers)).encode()
    result = grade_submission(submission, CH01, assignment="ch01_notation", student="s")
    assert result.scores == {"test_net_input": (2.0, 2.0), "test_sigmoid": (2.0, 2.0),
                             "test_forward_folded": (3.0, 3.0),
                             "test_n_parameters": (0.0, 2.0)}
    assert result.total == 7 and set(result.report.flags) == {"wrong_without_error"}
    assert json.dumps(result.report.tests["test_n_parameters"]["reasons"]) == \
        '["n_parameters is wrong for other layer sizes"]'
