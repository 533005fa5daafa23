"""The grading package on its own: the sandbox, the trusted checks, the scan, one submission graded.

The end-to-end proofs (a batch of honest and hostile students through nbgrader) are in
tests/test_nbgrader_pipeline.py; these are the pieces, with a few sandboxed kernels started directly.
"""

from __future__ import annotations

import json
import os
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


def test_accuracy_rule_checks_the_value_against_recorded_predictions_and_trusted_labels():
    reference, _ = checks.read_records(_record_cell(
        _payload("labels", np.array([1, 2, 3, 4])), _payload("predictions", np.array([1, 2, 3, 4]), rule="data"),
        _payload("acc", 1.0, rule="accuracy", params={"predictions": "predictions", "labels": "labels",
                                                      "min": 0.5})))

    def student(predictions, accuracy):
        return _record_cell(_payload("labels", np.array([1, 2, 3, 4])), _payload("predictions", np.array(predictions)),
                            _payload("acc", accuracy))

    assert checks.judge(student([1, 2, 0, 4], 0.75), reference).passed, "another model's honest accuracy"
    assert not checks.judge(student([1, 2, 0, 4], 1.0), reference).passed, "a claimed accuracy"
    assert not checks.judge(student([0, 0, 0, 4], 0.25), reference).passed, "below the minimum"


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


@pytest.mark.timeout(300)
def test_the_wall_clock_stops_a_notebook_that_runs_too_long(tmp_path):
    config = Config({"Sandbox": {"wall_clock": 3.0}, "ExecutePreprocessor": {"timeout": 60}})
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time\ntime.sleep(120)"),
                                         nbformat.v4.new_code_cell("print('never')")])
    executed, resources = run_sandboxed(nb, config=config, workdir=tmp_path)
    events = resources["grading"]["events"]
    assert [flag for flag, _ in events] == ["wall_clock"], events
    assert executed.cells[1].outputs[0].ename == "NotRun"


@pytest.mark.timeout(600)
def test_grade_submission_grades_one_notebook_without_a_gradebook(tmp_path):
    source = sub.read(CH01)
    release_like = sub.read(REPO_ROOT / "exercises" / "ch01_notation" / "ch01_notation.ipynb")
    answers = sub.solution_answers(source)
    answers["n_parameters"] = "def n_parameters(layer_sizes):\n    return 42310\n"
    submission = nbformat.writes(sub.fill(release_like, answers)).encode()
    result = grade_submission(submission, CH01, assignment="ch01_notation", student="s")
    assert result.scores == {"test_net_input": (2.0, 2.0), "test_softmax": (2.0, 2.0), "test_forward": (3.0, 3.0),
                             "test_n_parameters": (0.0, 2.0)}
    assert result.total == 7 and set(result.report.flags) == {"wrong_without_error"}
    assert json.dumps(result.report.tests["test_n_parameters"]["reasons"]) == \
        '["n_parameters is wrong for other layer sizes"]'
