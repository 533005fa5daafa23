"""The exercises, end to end through nbgrader, in a temporary copy of the course directory.

One module-scoped course runs the nbgrader commands once, in the order the instructor guide gives:
generate the release, validate, autograde a batch of submissions, give feedback, export the grades.
The tests then read what the commands wrote (the gradebook, the notebooks, the CSV), never their exit
codes: nbgrader exits 0 after some failures and 1 when one student of many fails.

The batch for chapter 1 holds realistic and hostile submissions (see ``nbgrader_fixtures/students.py``),
graded with the sandbox on, in two runs: most of it first, with a shorter cell limit than the course's
(two students wait it out), then the rest with the guide's command, which must skip what the first run
graded. Every other assignment is graded for a student who submits the solution and one who submits
the release untouched. The course runs on whatever data this machine has: full MNIST, or offline the
embedded sample (the notebooks and their checks hold on both).
"""

from __future__ import annotations

import csv
import filecmp
import json
import os
import re
import shutil
import sqlite3
import zipfile

import pytest
from nbgrader_fixtures import submissions as sub
from nbgrader_fixtures.course import ASSIGNMENTS, REPO_ROOT, Course, nbgrader_env
from nbgrader_fixtures.guides import BATCH_SECTION, LMS_SECTION, guide_commands
from nbgrader_fixtures.students import ASSIGNMENT as BATCH_ASSIGNMENT
from nbgrader_fixtures.students import POINTS, STUDENTS

from grading import checks, sandbox
from grading import kit as kit_module
from grading.kernel import UNSANDBOXED_WARNING

# The pipeline needs minutes; this replaces the suite's per-test limit for these tests only.
# COURSE_TESTS_BUSY_CORE=1 grades with one core kept busy by another process (conftest.py).
pytestmark = [pytest.mark.timeout(2400), pytest.mark.usefixtures("one_core_busy")]

GUIDES = REPO_ROOT / "book" / "guides"
SOLUTION, BLANK = "full", "blank"  # the two students who submit every assignment
# Chapter 1's batch is graded in two runs. The first grades most of it with a cell limit shorter than
# the course's 30 s: two students' cells never end and wait out the limit, whose length changes nothing
# the tests check. It leaves out the students who fill memory, disk or the process table until a limit
# stops them, which on a busy machine can take longer than the short limit. The second run is the
# guide's plain command: it grades those with the course's settings and skips everyone else.
SHORT_CELL_TIMEOUT = 5
SLOW_BY_DESIGN = ("fills_memory", "fills_disk", "forks")
CONFIG_FAILED = "Exception while loading config file"


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Course:
    course = Course.copy_from_repo(tmp_path_factory.mktemp("course"))
    course.run('nbgrader generate_assignment "*" --force')
    return course


@pytest.fixture(scope="module")
def validations(course) -> dict[str, str]:
    """What `nbgrader validate` prints for the solution and for the untouched release."""
    paths = {
        "solution": f"solutions/{BATCH_ASSIGNMENT}/{BATCH_ASSIGNMENT}.ipynb",
        "release": f"exercises/{BATCH_ASSIGNMENT}/{BATCH_ASSIGNMENT}.ipynb",
    }
    return {name: course.run(f"nbgrader validate {path}").output for name, path in paths.items()}


@pytest.fixture(scope="module")
def student_validation(course, tmp_path_factory) -> str:
    """A student validating in their own copy of the assignment's folder, as the student guide says."""
    folder = tmp_path_factory.mktemp("student") / BATCH_ASSIGNMENT
    shutil.copytree(course.release_path(BATCH_ASSIGNMENT).parent, folder)
    student = Course(folder, course.history)  # same command history: the guide test reads it
    return student.run(f"nbgrader validate {BATCH_ASSIGNMENT}.ipynb").output


@pytest.fixture(scope="module")
def graded(course):
    """Submit, autograde, grade the written answers by hand, give feedback and export, once."""
    from nbgrader.api import Gradebook

    for assignment in ASSIGNMENTS:
        release = sub.read(course.release_path(assignment))
        course.submit(SOLUTION, assignment, sub.fill(release, sub.solution_answers(
            sub.read(course.source_path(assignment)))))
        course.submit(BLANK, assignment, release)
    release = sub.read(course.release_path(BATCH_ASSIGNMENT))
    solution = sub.solution_answers(sub.read(course.source_path(BATCH_ASSIGNMENT)))
    for student in STUDENTS:
        if student.name not in (SOLUTION, BLANK):
            course.submit(student.name, BATCH_ASSIGNMENT, student.make(release, solution))

    course.run(f"nbgrader autograde {BATCH_ASSIGNMENT} --ExecutePreprocessor.timeout={SHORT_CELL_TIMEOUT}"
               f" --CourseDirectory.student_id_exclude={','.join(SLOW_BY_DESIGN)}")
    graded_files = {path: path.stat().st_mtime_ns for path in (course.root / "autograded").rglob("*.ipynb")}
    rest = course.run(f"nbgrader autograde {BATCH_ASSIGNMENT}")
    regraded = [path for path, mtime in graded_files.items() if path.stat().st_mtime_ns != mtime]
    course.run('nbgrader autograde "*"')  # the other assignments; graded submissions are skipped

    db_url = f"sqlite:///{course.root / 'gradebook.db'}"
    with Gradebook(db_url) as gb:
        autograded = _read_grades(gb)
        # What an instructor does in formgrader: full marks for the solution's written answers.
        for assignment in ASSIGNMENTS:
            for notebook in gb.find_submission(assignment, SOLUTION).notebooks:
                for grade in notebook.grades:
                    if grade.cell.cell_type == "markdown":
                        grade.manual_score = grade.max_score
        gb.db.commit()
        final = _read_grades(gb)

    course.run(f"nbgrader generate_feedback {BATCH_ASSIGNMENT}")
    course.run("nbgrader export")
    return {"autograded": autograded, "final": final, "rest": rest.output, "regraded": regraded}


def _read_grades(gb) -> dict:
    """(assignment, student) -> {cell: (score, max_score, needs_manual_grade, cell_type)}."""
    grades = {}
    for assignment in gb.assignments:
        for submission in assignment.submissions:
            grades[assignment.name, submission.student.id] = {
                g.name: (g.score, g.max_score, g.needs_manual_grade, g.cell.cell_type)
                for notebook in submission.notebooks for g in notebook.grades
            }
    return grades


# --- the release --------------------------------------------------------------------------------------


def test_every_assignment_has_one_notebook_named_like_its_folder():
    # One assignment per chapter (the introduction has none), numbered and ordered as the book's chapters
    from course_utils.book import toc_docnames

    chapters = [name.split("/")[1] for name in toc_docnames(REPO_ROOT / "book" / "_toc.yml")
                if name.startswith("chapters/") and not name.startswith("chapters/00_")]
    assert [name[2:4] for name in ASSIGNMENTS] == [name[:2] for name in chapters], (ASSIGNMENTS, chapters)
    for assignment in ASSIGNMENTS:
        files = sorted(p.name for p in (REPO_ROOT / "solutions" / assignment).iterdir())
        assert files == [f"{assignment}.ipynb"], f"solutions/{assignment} holds {files}"


def test_committed_release_is_exactly_what_generation_produces(course):
    """exercises/ must be byte-for-byte nbgrader's output: nothing in it is edited by hand."""
    generated, committed = course.root / "exercises", REPO_ROOT / "exercises"
    generated_files = sorted(p.relative_to(generated) for p in generated.rglob("*") if p.is_file())
    committed_files = sorted(
        p.relative_to(committed) for p in committed.rglob("*")
        if p.is_file() and ".ipynb_checkpoints" not in p.parts
    )
    assert committed_files == generated_files, "exercises/ holds other files than the generated release"
    stale = [str(p) for p in generated_files
             if not filecmp.cmp(generated / p, committed / p, shallow=False)]
    assert not stale, (
        f"exercises/ differs from a fresh release in {stale}: run "
        '`nbgrader generate_assignment "*" --force` and commit the result'
    )


def test_release_hides_solutions_and_hidden_tests(course):
    for assignment in ASSIGNMENTS:
        text = course.release_path(assignment).read_text(encoding="utf-8")
        for marker in ("BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS"):
            assert marker not in text, f"{assignment}: the release still contains {marker!r}"


def test_every_command_loaded_the_config(course, validations, graded, student_validation, unsandboxed):
    # A config file that raises is skipped with a logged error: the commands would run without it.
    broken = [r.command for r in course.history if CONFIG_FAILED in r.output]
    assert not broken, f"nbgrader_config.py failed to load in: {broken}"


# --- every assignment: the solution earns everything, the release nothing -----------------------------


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_earns_every_autograded_point(graded, assignment):
    cells = graded["autograded"][assignment, SOLUTION]
    assert cells, f"{assignment}: nothing was graded"
    lost = {name: (score, top) for name, (score, top, _, kind) in cells.items()
            if kind == "code" and score != top}
    assert not lost, f"{assignment}: the solution loses points in {lost}"
    # Written answers wait for the instructor; once graded by hand the total is the maximum.
    written = [name for name, (*_, manual, kind) in cells.items() if kind == "markdown"]
    assert all(cells[name][2] for name in written), f"{assignment}: written answers not left for grading"
    final = graded["final"][assignment, SOLUTION]
    assert sum(s for s, *_ in final.values()) == sum(t for _, t, *_ in final.values())


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_untouched_release_scores_zero(graded, assignment):
    cells = graded["autograded"][assignment, BLANK]
    assert cells and all(score == 0 for score, *_ in cells.values()), f"{assignment}: {cells}"
    # An answer left as "YOUR ANSWER HERE" needs no reading.
    assert not any(manual for _, _, manual, _ in cells.values())


# --- chapter 1: a realistic batch -----------------------------------------------------------------------


@pytest.mark.parametrize("student", STUDENTS, ids=lambda s: s.name)
def test_batch_scores_per_cell(graded, student):
    cells = graded["final"][BATCH_ASSIGNMENT, student.name]
    scores = {name: score for name, (score, *_) in cells.items()}
    assert scores == student.expected


def test_tampered_tests_are_restored(course, graded):
    graded_nb = sub.read(course.root / "autograded" / "edits_tests" / BATCH_ASSIGNMENT
                         / f"{BATCH_ASSIGNMENT}.ipynb")
    source = sub.read(course.source_path(BATCH_ASSIGNMENT))
    original = {sub.grade_id(c): c for c in source.cells if sub.is_test(c)}
    restored = {sub.grade_id(c): c for c in graded_nb.cells if sub.is_test(c)}
    assert restored.keys() == original.keys()
    for name, cell in restored.items():
        assert cell.source == original[name].source, f"{name} was not restored (hidden tests included)"
        assert cell.metadata.nbgrader["points"] == original[name].metadata.nbgrader["points"]


def test_deleted_tests_are_put_back(course, graded):
    graded_nb = sub.read(course.root / "autograded" / "deletes_tests" / BATCH_ASSIGNMENT
                         / f"{BATCH_ASSIGNMENT}.ipynb")
    ids = [sub.grade_id(c) for c in graded_nb.cells]
    assert ids.index("test_sigmoid") == ids.index("sigmoid") + 1
    assert ids.index("test_n_parameters") == ids.index("n_parameters") + 1


def test_infinite_loop_is_interrupted(course, graded):
    graded_nb = sub.read(course.root / "autograded" / "infinite_loop" / BATCH_ASSIGNMENT
                         / f"{BATCH_ASSIGNMENT}.ipynb")
    loop_cell = next(c for c in graded_nb.cells if sub.grade_id(c) == "n_parameters")
    errors = [o.ename for o in loop_cell.outputs if o.output_type == "error"]
    assert errors and errors[0] in ("CellTimeoutError", "KeyboardInterrupt"), errors


def test_autograding_again_skips_every_graded_submission(graded):
    pattern = rf"Skipping existing assignment: \S*/autograded/(\S+)/{BATCH_ASSIGNMENT}"
    skipped = re.findall(pattern, graded["rest"])
    expected = sorted(student.name for student in STUDENTS if student.name not in SLOW_BY_DESIGN)
    assert sorted(skipped) == expected, graded["rest"][-3000:]
    assert not graded["regraded"], f"graded again: {graded['regraded']}"


def test_huge_output_is_cut(course, graded):
    notebook = (course.root / "autograded" / "huge_output" / BATCH_ASSIGNMENT
                / f"{BATCH_ASSIGNMENT}.ipynb")
    feedback = course.feedback_path("huge_output", BATCH_ASSIGNMENT)
    assert notebook.stat().st_size < 1_000_000
    assert feedback.stat().st_size < 1_000_000
    assert "Output truncated" in notebook.read_text(encoding="utf-8")


def test_feedback_for_every_student(course, graded):
    for student in STUDENTS:
        html = course.feedback_path(student.name, BATCH_ASSIGNMENT).read_text(encoding="utf-8")
        total = f"(Score: {student.total:.1f} / {sum(POINTS.values()):.1f})"
        assert f"<h4>{BATCH_ASSIGNMENT} {total}</h4>" in html, f"{student.name}: wrong total in feedback"
        for cell, earned in student.expected.items():
            line = f'<li><a href="#{cell}">Test cell</a> (Score: {earned:.1f} / {POINTS[cell]:.1f})</li>'
            assert line in html, f"{student.name}: feedback lacks {line}"


def test_export_has_every_submission_with_its_score(course, graded):
    with open(course.root / "grades.csv", newline="", encoding="utf-8") as f:
        rows = {(r["assignment"], r["student_id"]): r for r in csv.DictReader(f)}
    for student in STUDENTS:
        row = rows[BATCH_ASSIGNMENT, student.name]
        assert float(row["score"]) == student.total, row
        assert float(row["max_score"]) == sum(POINTS.values()), row
    for assignment in ASSIGNMENTS:
        solution, blank = rows[assignment, SOLUTION], rows[assignment, BLANK]
        assert float(solution["score"]) == float(solution["max_score"]) > 0, solution
        assert float(blank["score"]) == 0, blank


def _public_text() -> str:
    """What anyone may see: the release's cells and the course's helper package."""
    texts = [cell.source for assignment in ASSIGNMENTS
             for cell in sub.read(REPO_ROOT / "exercises" / assignment / f"{assignment}.ipynb").cells]
    texts += [p.read_text(encoding="utf-8") for p in (REPO_ROOT / "course_utils").glob("*.py")]
    return "\n".join(texts)


def _secret(lines, assignment: str) -> set[str]:
    public = _public_text()
    return {line for line in lines if line not in public}


def _secret_lines(assignment: str) -> set[str]:
    """The lines of an assignment's hidden tests that nothing public contains."""
    source = sub.read(REPO_ROOT / "solutions" / assignment / f"{assignment}.ipynb")
    return _secret([line for cell in source.cells if sub.is_test(cell) for line in checks.hidden_lines(cell.source)],
                   assignment)


def _report(course, student: str, assignment: str = BATCH_ASSIGNMENT) -> dict:
    return json.loads((course.root / "reports" / assignment / f"{student}.json").read_text(encoding="utf-8"))


def _autograded(course, student: str, assignment: str = BATCH_ASSIGNMENT):
    return sub.read(course.root / "autograded" / student / assignment / f"{assignment}.ipynb")


def _output_text(notebook) -> str:
    return json.dumps([cell.get("outputs", []) for cell in notebook.cells])


def _printed(notebook, marker: str) -> str:
    """The line a submission printed that starts with ``marker``."""
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            for line in output.get("text", "").splitlines():
                if line.startswith(marker):
                    return line[len(marker):].strip()
    raise AssertionError(f"nothing printed starting with {marker!r}")


@pytest.mark.parametrize("student", STUDENTS, ids=lambda s: s.name)
def test_report_flags_what_was_caught(course, graded, student):
    report = _report(course, student.name)
    flags = set(report["flags"])
    if student.name == "fills_memory":
        flags.discard("kernel_died")  # a memory cgroup kills the kernel; RLIMIT_DATA raises MemoryError
    assert flags == student.flags, report["flags"]
    assert report["sandbox"] == "bubblewrap"
    assert {name: t["score"] for name, t in report["tests"].items()} == student.expected


def test_hidden_tests_never_reach_feedback_or_graded_outputs(course, graded):
    secret = sorted(_secret_lines(BATCH_ASSIGNMENT))
    assert len(secret) > 10
    for student in STUDENTS:
        html = course.feedback_path(student.name, BATCH_ASSIGNMENT).read_text(encoding="utf-8")
        outputs = _output_text(_autograded(course, student.name))
        for line in secret:
            for where, text in (("feedback", html), ("graded outputs", outputs)):
                assert line not in text and json.dumps(line)[1:-1] not in text, \
                    f"{student.name}: a hidden test line is in the {where}: {line!r}"
        assert "HIDDEN TESTS" not in html, student.name
        # a test cell shows its verdict and nothing else: no traceback quoting hidden code
        for cell in _autograded(course, student.name).cells:
            if sub.is_test(cell):
                assert all(o.output_type == "error" and o.ename == "TestFailed" for o in cell.outputs), \
                    f"{student.name}: {sub.grade_id(cell)} shows {cell.outputs}"


def test_feedback_names_each_failed_test_and_why(course, graded):
    html = course.feedback_path("wrong", BATCH_ASSIGNMENT).read_text(encoding="utf-8")
    assert re.search(r"n_parameters: the tutorial(&#39;|&#x27;|')s network: 0 of 2 points", html), \
        "the failed test's name and points"
    assert "n_parameters is wrong for other layer sizes" in html


def test_answers_that_fool_the_visible_tests_earn_nothing(course, graded):
    # the liar's and the patcher's answers pass the visible tests inside the kernel
    for name in ("liar", "patches_numpy", "skips_tests"):
        graded_nb = _autograded(course, name)
        net_input_test = next(c for c in graded_nb.cells if sub.grade_id(c) == "test_net_input")
        assert [o.ename for o in net_input_test.outputs if o.output_type == "error"] == ["TestFailed"], name
    assert _report(course, "liar")["tests"]["test_n_parameters"]["wrong"] == ["count", "type"] * 8


def test_the_notebook_being_graded_is_not_in_the_sandbox(course, graded):
    graded_nb = _autograded(course, "reads_hidden")
    assert _printed(graded_nb, "notebooks visible:") == "[]"
    # its display update from inside a test cell never reached its own cell
    assert "nothing yet" in _output_text(graded_nb)
    assert not (course.root / "autograded" / "reads_hidden" / BATCH_ASSIGNMENT / "leaked.txt").exists()


def test_snooping_finds_nothing_and_changes_nothing(course, graded):
    probes = _printed(_autograded(course, "snoops"), "PROBES")
    for hidden in ("solutions", "gradebook.db", "nbgrader_config.py", "shadow"):
        assert f"{hidden}': 'FileNotFoundError'" in probes, probes
    # The sandbox's own root is read-only. (The test course lives under /tmp, so the course folder's
    # path inside the sandbox lies in its private /tmp, where writes succeed and vanish: the checks
    # below show that nothing reached the real folder.)
    assert "'write /tmp/../snooped.txt': 'OSError'" in probes, probes
    # no network at all: the loopback device exists, but is the sandbox's own, with nothing behind it
    assert "'socket 1.1.1.1': 'OSError'" in probes and "'connected'" not in probes, probes
    assert not (course.root / "snooped.txt").exists()
    assert b"overwritten" not in (course.root / "gradebook.db").read_bytes()
    with sqlite3.connect(course.root / "gradebook.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_forks_disk_and_memory_are_capped(course, graded):
    limits = sandbox.Limits()
    forked, stopped_by = _printed(_autograded(course, "forks"), "FORKED").split()
    assert 0 < int(forked) < limits.processes and stopped_by in ("BlockingIOError", "deadline"), (forked, stopped_by)
    written = _printed(_autograded(course, "fills_disk"), "WRITTEN")
    for path in ("filler", "/tmp/filler", "/dev/shm/filler"):
        megabytes = int(re.search(rf"'{re.escape(path)}': \((\d+), ", written).group(1))
        assert megabytes * sandbox.MiB <= max(limits.file_size_bytes, limits.tmp_bytes), written
    folder = course.root / "autograded" / "fills_disk" / BATCH_ASSIGNMENT
    assert sorted(p.name for p in folder.iterdir()) == [f"{BATCH_ASSIGNMENT}.ipynb"]
    hog = _autograded(course, "fills_memory")
    if "kernel_died" not in _report(course, "fills_memory")["flags"]:
        assert int(_printed(hog, "ALLOCATED MB")) * sandbox.MiB <= limits.memory_bytes
    flood = course.root / "autograded" / "floods_output" / BATCH_ASSIGNMENT / f"{BATCH_ASSIGNMENT}.ipynb"
    assert flood.stat().st_size < 1_000_000


def test_a_dead_or_stuck_kernel_costs_only_the_cells_after_it(course, graded):
    for name, flag in (("dies", "kernel_died"), ("hangs", "cell_timeout")):
        graded_nb = _autograded(course, name)
        last_test = next(c for c in graded_nb.cells if sub.grade_id(c) == "test_n_parameters")
        assert [o.ename for o in last_test.outputs] == ["TestFailed"], name
        assert flag in _report(course, name)["flags"]


@pytest.fixture(scope="module")
def unsandboxed(course, graded):
    """The explicit opt-out, for one trusted submission after the batch."""
    release = sub.read(course.release_path(BATCH_ASSIGNMENT))
    solution = sub.solution_answers(sub.read(course.source_path(BATCH_ASSIGNMENT)))
    course.submit("alice", BATCH_ASSIGNMENT, sub.fill(release, solution))
    return course.run(f"nbgrader autograde {BATCH_ASSIGNMENT} --student alice --Sandbox.enabled=False")


def test_grading_without_the_sandbox_needs_a_flag_and_says_so(course, unsandboxed):
    assert UNSANDBOXED_WARNING.splitlines()[1] in unsandboxed.output
    report = _report(course, "alice")
    assert report["sandbox"] == "none" and "unsandboxed" in report["flags"]
    assert sum(t["score"] for t in report["tests"].values()) == sum(POINTS.values())


@pytest.fixture(scope="module")
def no_sandbox(course, graded, unsandboxed, tmp_path_factory):
    """Autograde where bubblewrap cannot create namespaces (a fake bwrap that fails as Docker's would)."""
    fake = tmp_path_factory.mktemp("fake-bwrap")
    (fake / "bwrap").write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace, likely "
                                "because the kernel does not allow non-privileged user namespaces.' >&2\n"
                                "exit 1\n")
    (fake / "bwrap").chmod(0o755)
    release = sub.read(course.release_path(BATCH_ASSIGNMENT))
    course.submit("nobwrap", BATCH_ASSIGNMENT, release)
    before = (course.root / "gradebook.db").read_bytes()
    result = course.run(f"nbgrader autograde {BATCH_ASSIGNMENT} --student nobwrap",
                        env={"PATH": f"{fake}{os.pathsep}{nbgrader_env()['PATH']}"})
    return result, before


def test_grading_stops_with_a_clear_error_where_the_sandbox_cannot_start(course, no_sandbox):
    result, before = no_sandbox
    assert "the sandbox cannot start on this machine" in result.output
    assert "user namespaces" in result.output and "--Sandbox.enabled=False" in result.output
    assert result.returncode != 0
    assert not (course.root / "autograded" / "nobwrap" / BATCH_ASSIGNMENT / f"{BATCH_ASSIGNMENT}.ipynb").exists()


# --- the student kit ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kit(course, tmp_path_factory) -> dict[str, bytes]:
    """`make kit` in a copy of the repository (solutions included), as the instructor guide says."""
    root = tmp_path_factory.mktemp("repository")
    for name in ("Makefile", "requirements.txt", "pyproject.toml", "nbgrader_config.py", "README.md",
                 "jupyter_server_config.py"):
        shutil.copy2(REPO_ROOT / name, root / name)
    for folder in ("grading", "course_utils", "exercises", "solutions"):
        shutil.copytree(REPO_ROOT / folder, root / folder,
                        ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints"))
    result = Course(root, course.history).run("make kit")
    assert result.returncode == 0, result.output
    with zipfile.ZipFile(root / "dist" / "student-kit.zip") as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_kit_holds_the_release_and_what_students_need(kit):
    top = kit_module.TOP
    for name in ("README.md", "requirements.txt", "pyproject.toml", "jupyter_server_config.py",
                 "course_utils/__init__.py", "course_utils/records.py"):
        assert f"{top}/{name}" in kit, name
    for path in sorted((REPO_ROOT / "exercises").rglob("*.ipynb")):
        name = f"{top}/{path.relative_to(REPO_ROOT).as_posix()}"
        assert kit.get(name) == path.read_bytes(), f"{name} differs from the release"
    assert 'packages = ["course_utils"]' in kit[f"{top}/pyproject.toml"].decode()


def test_kit_leaks_no_solution_and_no_hidden_test(kit):
    for name in kit:
        parts = name.split("/")
        assert not {"solutions", "grading", ".git", "autograded", "submitted"} & set(parts), name
        assert not name.endswith(("nbgrader_config.py", ".db")), name
    secrets = {"BEGIN SOLUTION", "END SOLUTION", "HIDDEN TESTS"}
    for assignment in ASSIGNMENTS:
        source = sub.read(REPO_ROOT / "solutions" / assignment / f"{assignment}.ipynb")
        secrets |= _secret_lines(assignment)
        for answer in sub.solution_answers(source).values():
            secrets |= _secret([line.strip() for line in answer.splitlines() if len(line.strip()) >= 25], assignment)
    assert len(secrets) > 100
    for name, data in kit.items():
        text = data.decode("utf-8", errors="replace")
        leaked = [line for line in secrets if line in text or json.dumps(line)[1:-1] in text]
        assert not leaked, f"{name} leaks {leaked[:3]}"


# --- what students and instructors read ---------------------------------------------------------------


def test_validate_messages(validations, student_validation):
    assert "Success! Your notebook passes all the tests." in validations["solution"]
    blank = validations["release"]
    assert "VALIDATION FAILED ON 4 CELL(S)!" in blank
    assert "The following cell failed:" in blank and "NotImplementedError" in blank
    assert "VALIDATION FAILED ON 4 CELL(S)!" in student_validation


@pytest.mark.parametrize("guide", ["instructor_guide.md", "student_guide.md"])
def test_every_nbgrader_command_in_the_guides_is_one_the_tests_ran(course, validations, graded,
                                                                  student_validation, unsandboxed, kit, guide):
    # The sections on grading a whole class and on Canvas and Moodle have their own courses and checks
    # (tests/test_batch.py, tests/test_lms.py).
    others = (BATCH_SECTION, LMS_SECTION)
    commands = [c for c in guide_commands(guide, without=others) if c.startswith("nbgrader")]
    if guide == "instructor_guide.md":
        assert len(commands) >= 6, f"{guide} shows too few commands: {commands}"
        commands = guide_commands(guide, without=others)  # every command, nbgrader's or not
    ran = {result.command for result in course.history}
    missing = [c for c in commands if c not in ran]
    assert not missing, f"{guide} shows commands the tests never ran: {missing}"
