"""The exercises, end to end through nbgrader, in a temporary copy of the course directory.

One module-scoped course runs each nbgrader command once, in the order the instructor guide gives:
generate the release, validate, autograde a batch of submissions, give feedback, export the grades.
The tests then read what the commands wrote (the gradebook, the notebooks, the CSV), never their exit
codes: nbgrader exits 0 after some failures and 1 when one student of many fails.

The batch for chapter 1 holds realistic and hostile submissions (see ``nbgrader_fixtures/students.py``);
every other assignment is graded for a student who submits the solution and one who submits the
release untouched.
"""

from __future__ import annotations

import csv
import filecmp
import re
import shutil

import pytest
from nbgrader_fixtures import submissions as sub
from nbgrader_fixtures.course import ASSIGNMENTS, REPO_ROOT, Course
from nbgrader_fixtures.students import ASSIGNMENT as BATCH_ASSIGNMENT
from nbgrader_fixtures.students import POINTS, STUDENTS

# The pipeline needs minutes; this replaces the suite's per-test limit for these tests only.
pytestmark = [pytest.mark.mnist, pytest.mark.timeout(2400)]

GUIDES = REPO_ROOT / "book" / "guides"
SOLUTION, BLANK = "full", "blank"  # the two students who submit every assignment
CONFIG_FAILED = "Exception while loading config file"


def _require_mnist():
    from course_utils.data import MNISTNotFoundError, find_mnist_dir

    try:
        find_mnist_dir(download=False)
    except MNISTNotFoundError:
        pytest.skip("the exercises read MNIST: set MNIST_DIR to a folder with the four files")


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Course:
    _require_mnist()
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

    course.run(f"nbgrader autograde {BATCH_ASSIGNMENT}")
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
    return {"autograded": autograded, "final": final}


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


def test_every_command_loaded_the_config(course, validations, graded, student_validation):
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
    assert ids.index("test_softmax") == ids.index("softmax") + 1
    assert ids.index("test_n_parameters") == ids.index("n_parameters") + 1


def test_infinite_loop_is_interrupted(course, graded):
    graded_nb = sub.read(course.root / "autograded" / "infinite_loop" / BATCH_ASSIGNMENT
                         / f"{BATCH_ASSIGNMENT}.ipynb")
    loop_cell = next(c for c in graded_nb.cells if sub.grade_id(c) == "n_parameters")
    errors = [o.ename for o in loop_cell.outputs if o.output_type == "error"]
    assert errors and errors[0] in ("CellTimeoutError", "KeyboardInterrupt"), errors


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


# --- what students and instructors read ---------------------------------------------------------------


def test_validate_messages(validations, student_validation):
    assert "Success! Your notebook passes all the tests." in validations["solution"]
    blank = validations["release"]
    assert "VALIDATION FAILED ON 4 CELL(S)!" in blank
    assert "The following cell failed:" in blank and "NotImplementedError" in blank
    assert "VALIDATION FAILED ON 4 CELL(S)!" in student_validation


def _guide_commands(name: str) -> list[str]:
    """The command lines in a guide's bash code blocks (blank lines and comments skipped)."""
    text = (GUIDES / name).read_text(encoding="utf-8")
    blocks = re.findall(r"^```(?:bash|console|shell|sh)\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines()
            if line.strip() and not line.strip().startswith("#")]


@pytest.mark.parametrize("guide", ["instructor_guide.md", "student_guide.md"])
def test_every_nbgrader_command_in_the_guides_is_one_the_tests_ran(course, validations, graded,
                                                                  student_validation, guide):
    commands = [c for c in _guide_commands(guide) if c.startswith("nbgrader")]
    if guide == "instructor_guide.md":
        assert len(commands) >= 5, f"{guide} shows too few commands: {commands}"
        others = [c for c in _guide_commands(guide) if not c.startswith("nbgrader")]
        assert not others, f"{guide} shows commands the tests do not run: {others}"
    ran = {result.command for result in course.history}
    missing = [c for c in commands if c not in ran]
    assert not missing, f"{guide} shows commands the tests never ran: {missing}"
