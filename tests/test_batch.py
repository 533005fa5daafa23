"""``python -m grading autograde`` (grading/batch.py): a class graded at once, on one machine and on a cluster.

Two temporary courses run the commands of the instructor guide's section "Grading a whole class":

- one on a LocalCluster with the default SQLite gradebook: a batch of chapter 1 submissions (one of them
  not a notebook at all), then every assignment, then one student again with ``--force``, then
  nbgrader's own feedback and export on what the command wrote;
- one on a real cluster: a ``dask scheduler`` and two ``dask worker`` processes on loopback, grading
  into a PostgreSQL server started for the test; then the batch again, with one worker killed while
  it grades.

The tests read what the commands wrote (the gradebook, the notebooks, the summary), never timings.
"""

from __future__ import annotations

import csv
import os
import signal
import time
from collections import Counter
from types import SimpleNamespace

import nbformat
import psutil
import pytest
from loopback import free_port
from nbgrader_fixtures import submissions as sub
from nbgrader_fixtures.course import Course
from nbgrader_fixtures.guides import BATCH_SECTION, guide_commands
from nbgrader_fixtures.postgres import bindir, postgres_server
from nbgrader_fixtures.students import ASSIGNMENT, FULL, POINTS, STUDENTS

# COURSE_TESTS_BUSY_CORE=1 grades with one core kept busy by another process (conftest.py).
pytestmark = [pytest.mark.timeout(1200), pytest.mark.usefixtures("one_core_busy")]

OTHER = "ch02_idx"  # a second assignment, for "*"
#: Every command both courses ran, for the check against the guide.
HISTORY = []
BY_NAME = {s.name: s for s in STUDENTS}
# Chapter 1's batch: honest, wrong, tampering and dying submissions, and two more below.
LOCAL_BATCH = ["full", "blank", "wrong", "deletes_tests", "dies"]
CLUSTER_BATCH = ["full", "blank", "partial", "wrong", "edits_tests", "deletes_tests", "rebinds_names",
                 "import_error"]
# What a NumPy-only notebook has loaded by its last cell.
PROBE = 'import sys\nprint("HEAVY MODULES", sorted(m for m in ("tensorflow", "keras") if m in sys.modules))'


def _expected(student: str) -> dict[str, float]:
    return FULL if student in ("alice", "probe") else BY_NAME[student].expected


def _submit(course: Course, names: list[str]) -> None:
    release = sub.read(course.release_path(ASSIGNMENT))
    solution = sub.solution_answers(sub.read(course.source_path(ASSIGNMENT)))
    for name in names:
        course.submit(name, ASSIGNMENT, BY_NAME[name].make(release, solution))


def _grades(db_url: str, assignment: str = ASSIGNMENT) -> dict[str, dict[str, float]]:
    """student -> {test cell: score} for every submission of the assignment in the gradebook."""
    from nbgrader.api import Gradebook

    with Gradebook(db_url, "mlp-keras") as gb:
        return {s.student.id: {g.name: g.score for nb in s.notebooks for g in nb.grades}
                for s in gb.find_assignment(assignment).submissions}


def _summary_row(output: str, assignment: str) -> list[str]:
    for line in output.splitlines():
        if line.split()[:1] == [assignment]:
            return line.split()[1:5]  # submissions, graded, skipped, failed
    raise AssertionError(f"no summary row for {assignment} in:\n{output[-3000:]}")


def _graded_path(course: Course, student: str, assignment: str = ASSIGNMENT):
    return course.root / "autograded" / student / assignment / f"{assignment}.ipynb"


# --- one machine, SQLite ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    course = Course.copy_from_repo(tmp_path_factory.mktemp("course"))
    course.history = HISTORY
    for assignment in (ASSIGNMENT, OTHER):
        course.run(f"nbgrader generate_assignment {assignment} --force")
    _submit(course, LOCAL_BATCH)
    release = sub.read(course.release_path(ASSIGNMENT))
    solution = sub.solution_answers(sub.read(course.source_path(ASSIGNMENT)))
    course.submit("alice", ASSIGNMENT, sub.fill(release, solution))
    probe = sub.fill(release, solution)
    probe.cells.append(nbformat.v4.new_code_cell(PROBE))
    course.submit("probe", ASSIGNMENT, probe)
    broken = course.submission_path("broken", ASSIGNMENT)
    broken.parent.mkdir(parents=True)
    broken.write_text("this is not a notebook", encoding="utf-8")
    for name, notebook in (("full", sub.fill(sub.read(course.release_path(OTHER)), sub.solution_answers(
            sub.read(course.source_path(OTHER))))), ("blank", sub.read(course.release_path(OTHER)))):
        course.submit(name, OTHER, notebook)

    first = course.run("python -m grading autograde ch01_notation")
    db_url = f"sqlite:///{course.root / 'gradebook.db'}"
    after_first = _grades(db_url)
    mtimes = {s: _graded_path(course, s).stat().st_mtime_ns for s in after_first}
    everything = course.run('python -m grading autograde "*" --workers 2')
    unchanged = {s: _graded_path(course, s).stat().st_mtime_ns for s in after_first}
    again = course.run("python -m grading autograde ch01_notation --student alice --force")
    regraded = {s: _graded_path(course, s).stat().st_mtime_ns for s in after_first}
    course.run(f"nbgrader generate_feedback {ASSIGNMENT}")
    course.run("nbgrader export")
    return SimpleNamespace(course=course, db_url=db_url, first=first, everything=everything, again=again,
                           after_first=after_first, mtimes=mtimes, unchanged=unchanged, regraded=regraded)


def test_every_submission_scores_what_nbgrader_gives_it(local):
    graded = set(LOCAL_BATCH) | {"alice", "probe"}
    assert set(local.after_first) == graded, "the broken file is never in the gradebook"
    for student in graded:
        assert local.after_first[student] == _expected(student), student
    assert _grades(local.db_url) == local.after_first, "--force gives the same marks again"
    other = _grades(local.db_url, OTHER)
    assert sum(other["full"].values()) > 0 and set(other["blank"].values()) == {0}
    report = (local.course.root / "reports" / ASSIGNMENT / "dies.json").read_text(encoding="utf-8")
    assert '"kernel_died"' in report


def test_one_broken_submission_fails_alone(local):
    output = local.first.output
    assert _summary_row(output, ASSIGNMENT) == ["8", "7", "0", "1"], output[-3000:]
    assert "FAILED broken/ch01_notation" in output and "flagged wrong/ch01_notation: wrong_without_error" in output
    assert local.first.returncode == 1, "some submission failed"


def test_graded_submissions_are_skipped_unless_forced(local):
    assert _summary_row(local.everything.output, ASSIGNMENT) == ["8", "0", "7", "1"]
    assert _summary_row(local.everything.output, OTHER) == ["2", "2", "0", "0"]
    assert local.unchanged == local.mtimes, "skipped submissions are not written again"
    assert _summary_row(local.again.output, ASSIGNMENT) == ["1", "1", "0", "0"] and local.again.returncode == 0
    changed = {s for s in local.mtimes if local.regraded[s] != local.mtimes[s]}
    assert changed == {"alice"}


def test_numpy_only_exercises_never_load_tensorflow(local):
    graded = sub.read(_graded_path(local.course, "probe"))
    printed = "".join(o.get("text", "") for c in graded.cells for o in c.get("outputs", []))
    assert "HEAVY MODULES []" in printed, printed[-500:]


def test_nbgrader_feedback_and_export_read_what_the_command_wrote(local):
    for student, scores in local.after_first.items():
        html = local.course.feedback_path(student, ASSIGNMENT).read_text(encoding="utf-8")
        total = f"(Score: {sum(scores.values()):.1f} / {sum(POINTS.values()):.1f})"
        assert f"<h4>{ASSIGNMENT} {total}</h4>" in html, student
    with open(local.course.root / "grades.csv", newline="", encoding="utf-8") as f:
        rows = {(r["assignment"], r["student_id"]): float(r["score"]) for r in csv.DictReader(f)}
    for student, scores in local.after_first.items():
        assert rows[ASSIGNMENT, student] == sum(scores.values()), student


def test_a_sandbox_that_cannot_start_stops_the_batch_with_the_reason(local, tmp_path):
    from nbgrader_fixtures.course import nbgrader_env

    (tmp_path / "bwrap").write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace, likely "
                                    "because the kernel does not allow non-privileged user namespaces.' >&2\n"
                                    "exit 1\n")
    (tmp_path / "bwrap").chmod(0o755)
    local.course.submit("nobwrap", ASSIGNMENT, sub.read(local.course.release_path(ASSIGNMENT)))
    result = local.course.run("python -m grading autograde ch01_notation --student nobwrap",
                              env={"PATH": f"{tmp_path}{os.pathsep}{nbgrader_env()['PATH']}"})
    assert "the sandbox cannot start on this machine" in result.output and "--Sandbox.enabled=False" in result.output
    assert result.returncode == 1
    assert not _graded_path(local.course, "nobwrap").exists() and "nobwrap" not in _grades(local.db_url)


def test_results_written_together_are_one_transaction_all_or_nothing(tmp_path, monkeypatch):
    from nbgrader.api import Gradebook
    from nbgrader_fixtures.course import nbgrader_env

    from grading.batch import _one_transaction

    monkeypatch.setenv("PATH", nbgrader_env()["PATH"])  # nbgrader runs alembic to make the gradebook
    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as gb:
        with pytest.raises(RuntimeError), _one_transaction(gb.db):
            gb.update_or_create_student("first")
            gb.update_or_create_student("second")
            raise RuntimeError("the coordinator fails before the batch is written")
        assert gb.students == []
        with _one_transaction(gb.db):
            for name in ("first", "second"):
                gb.update_or_create_student(name)
    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}") as gb:
        assert sorted(s.id for s in gb.students) == ["first", "second"]


# --- a cluster: a real scheduler and workers, and PostgreSQL ---------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from distributed import Client

    if bindir() is None:
        pytest.fail("PostgreSQL's server programs (initdb, pg_ctl) are missing: run `make postgres`")
    logs = tmp_path_factory.mktemp("cluster-logs")
    with postgres_server() as db_url:
        course = Course.copy_from_repo(tmp_path_factory.mktemp("cluster-course"))
        course.history = HISTORY
        with open(course.root / "nbgrader_config.py", "a", encoding="utf-8") as config:
            config.write(f'\nc.CourseDirectory.db_url = "{db_url}"\n')
        course.run(f"nbgrader generate_assignment {ASSIGNMENT} --force")
        _submit(course, CLUSTER_BATCH)
        env = {"SCHEDULER": f"tcp://127.0.0.1:{free_port()}"}
        processes = [course.start('dask scheduler --host "$SCHEDULER"', env, logs / "scheduler.log")]
        processes += [course.start('dask worker "$SCHEDULER" --nthreads 1', env, logs / f"worker{i}.log")
                      for i in range(2)]
        client = None
        try:
            client = Client(env["SCHEDULER"], timeout="60s")
            client.wait_for_workers(2, timeout=180)
            yield SimpleNamespace(course=course, db_url=db_url, env=env, client=client, workers=processes[1:])
        finally:
            if client is not None:
                client.close()
            for process in processes:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait()


@pytest.fixture(scope="module")
def on_cluster(cluster):
    result = cluster.course.run('python -m grading autograde ch01_notation --scheduler "$SCHEDULER"', env=cluster.env)
    grades = _grades(cluster.db_url)
    export = cluster.course.run("nbgrader export")
    return SimpleNamespace(result=result, grades=grades, export=export)


def test_a_batch_on_a_dask_cluster_lands_in_postgresql(cluster, on_cluster):
    assert _summary_row(on_cluster.result.output, ASSIGNMENT) == ["8", "8", "0", "0"], on_cluster.result.output
    assert "on 2 workers" in on_cluster.result.output
    assert on_cluster.grades == {s: BY_NAME[s].expected for s in CLUSTER_BATCH}
    with open(cluster.course.root / "grades.csv", newline="", encoding="utf-8") as f:
        rows = {r["student_id"]: float(r["score"]) for r in csv.DictReader(f)}
    assert rows == {s: BY_NAME[s].total for s in CLUSTER_BATCH}
    assert not (cluster.course.root / "gradebook.db").exists(), "nothing went to SQLite"


def _still_running(started: dict[int, float]) -> dict[int, str]:
    """pid -> command line of each of ``started`` (from `_started`) that still runs, zombies and
    reused pids aside."""
    running = {}
    for pid, start_time in started.items():
        try:
            process = psutil.Process(pid)
            if process.create_time() == start_time and process.status() != psutil.STATUS_ZOMBIE:
                running[pid] = " ".join(process.cmdline())[:200]
        except psutil.NoSuchProcess:
            pass
    return running


def _started(processes) -> dict[int, float]:
    """pid -> start time of each process still there (a pid reused later is another process)."""
    started = {}
    for process in processes:
        try:
            started[process.pid] = process.create_time()
        except psutil.NoSuchProcess:
            pass
    return started


def test_a_worker_killed_mid_batch_loses_nothing_and_writes_nothing_twice(cluster, on_cluster):
    from grading.batch import Course as BatchCourse
    from grading.batch import grade_batch

    client, writes, killed = cluster.client, Counter(), {}
    pids = client.run(os.getpid)  # worker address -> its process (whose parent is a `dask worker` command)

    def kill_a_busy_worker(result, client):
        writes[result["student"]] += 1
        if killed:
            return
        busy = [a for a, keys in client.processing().items() if keys and a != result["worker"] and a in pids]
        if busy:
            victim = next(p for p in cluster.workers if psutil.Process(pids[busy[0]]).ppid() == p.pid)
            killed.update(address=busy[0], tasks=list(client.processing()[busy[0]]),
                          kernels=_started(psutil.Process(victim.pid).children(recursive=True)))
            os.killpg(victim.pid, signal.SIGKILL)

    course = BatchCourse.load(cluster.course.root)
    batch = grade_batch(course, ASSIGNMENT, force=True, scheduler=cluster.env["SCHEDULER"], progress=False,
                        on_write=kill_a_busy_worker)
    assert killed, "no worker was busy while results came in"
    assert [o.status for o in batch.outcomes] == ["graded"] * len(CLUSTER_BATCH), batch.table()
    assert writes == Counter(CLUSTER_BATCH), "every submission written exactly once"
    assert _grades(cluster.db_url) == {s: BY_NAME[s].expected for s in CLUSTER_BATCH}
    by_student = {o.student: o.worker for o in batch.outcomes}
    for key in killed["tasks"]:  # what the killed worker was running or judging, another one graded
        kind, _, rest = str(key).partition(f"-{ASSIGNMENT}-")
        if kind in ("run", "grade"):
            student = rest.rsplit("-", 1)[0]
            assert by_student[student] != killed["address"], student
    # the killed worker's kernels end with it (grading.launcher watches its parent)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _still_running(killed["kernels"]):
        time.sleep(0.5)
    left = _still_running(killed["kernels"])
    assert not left, f"processes of the killed worker still run: {left}"


# --- the guide ---------------------------------------------------------------------------------------------


def test_every_command_of_the_guide_section_is_one_the_tests_ran(local, on_cluster):
    commands = guide_commands("instructor_guide.md", only=BATCH_SECTION)
    assert len(commands) >= 6, commands
    ran = {result.command for result in HISTORY}
    missing = [c for c in commands if c not in ran]
    assert not missing, f"the guide shows commands the tests never ran: {missing}"


def test_make_grade_runs_the_command(repo_root):
    import subprocess

    dry_run = subprocess.run(["make", "-n", "grade", "ASSIGNMENT=ch01_notation", "ARGS=--force"], cwd=repo_root,
                             capture_output=True, text=True, check=True).stdout
    assert 'python -m grading autograde "ch01_notation" --force' in dry_run, dry_run
