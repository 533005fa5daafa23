"""The round trip through Canvas and Moodle (grading/lms.py), with the instructor guide's commands.

Two temporary courses, one per system, each get an archive made here the way the system writes it:
names with spaces, accents and apostrophes, a file flagged late, a resubmission, a student missing from
the roster, a file that is not a notebook and one whose name the system would never write. The guide's
commands collect it (twice: the second time changes nothing), autograde it with nbgrader, and write the
grade CSV and the feedback zip; the tests read what they wrote.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from pathlib import Path

import pytest
from nbgrader_fixtures import submissions as sub
from nbgrader_fixtures.course import Course
from nbgrader_fixtures.guides import LMS_SECTION, guide_commands

from grading import lms

pytestmark = pytest.mark.timeout(1800)
ASSIGNMENT = "ch01_notation"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
ROSTER = [  # student_id, first_name, last_name, email, canvas_user_id
    ("zoe", "Zoë", "O'Brien", "zoe.obrien@uni.example", "101"),
    ("jeanluc", "Jean Luc", "Picard", "jl.picard@uni.example", "102"),
    ("li", "Li", "Nguyễn", "li.nguyen@uni.example", "103"),
    ("absent", "Ada", "Absent", "ada@uni.example", "104"),
]
TIMES = {"on time": dt.datetime(2026, 11, 30, 10, 0), "resubmitted": dt.datetime(2026, 11, 30, 11, 30),
         "late": dt.datetime(2026, 12, 1, 9, 15)}


def _commands(lms_name: str) -> list[str]:
    return [c for c in guide_commands("instructor_guide.md", only=LMS_SECTION) if f"--lms {lms_name}" in c]


def _notebook_bytes(notebook) -> bytes:
    import nbformat

    return nbformat.writes(notebook).encode()


def _zip(path: Path, members: list[tuple[str, bytes, dt.datetime]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as bundle:
        for name, data, when in members:
            bundle.writestr(zipfile.ZipInfo(name, date_time=when.timetuple()[:6]), data)


def _write_roster(course: Course) -> None:
    with (course.root / "roster.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student_id", "first_name", "last_name", "email", "canvas_user_id"])
        writer.writerows(ROSTER)


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory):
    """The release, a solved copy and an older, half-solved copy of chapter 1's notebook."""
    course = Course.copy_from_repo(tmp_path_factory.mktemp("release"))
    course.run(f"nbgrader generate_assignment {ASSIGNMENT} --force")
    release = sub.read(course.release_path(ASSIGNMENT))
    solved = sub.fill(release, sub.solution_answers(sub.read(course.source_path(ASSIGNMENT))))
    return {"blank": _notebook_bytes(release), "solved": _notebook_bytes(solved)}


def _course(tmp_path_factory, name: str) -> Course:
    course = Course.copy_from_repo(tmp_path_factory.mktemp(name))
    course.run(f"nbgrader generate_assignment {ASSIGNMENT} --force")
    _write_roster(course)
    return course


def _submitted(course: Course) -> dict[str, bytes]:
    folder = course.root / "submitted"
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _round_trip(course: Course, lms_name: str) -> dict:
    collect, grades, feedback = (_commands(lms_name)[i] for i in range(3))
    first = course.run(collect)
    after_first = _submitted(course)
    unplaced = (course.root / "downloaded" / ASSIGNMENT / "unplaced.csv").read_text(encoding="utf-8")
    again = course.run(collect)
    after_again = _submitted(course)
    course.run(f"nbgrader autograde {ASSIGNMENT}")
    grade_run = course.run(grades)
    course.run(f"nbgrader generate_feedback {ASSIGNMENT}")
    feedback_run = course.run(feedback)
    out = lambda command: course.root / command.split("--out ")[1]  # noqa: E731
    with out(grades).open(encoding="utf-8-sig", newline="") as handle:
        grade_rows = list(csv.reader(handle))
    with zipfile.ZipFile(out(feedback)) as bundle:
        feedback_entries = sorted(bundle.namelist())
    return {"first": first, "again": again, "after_first": after_first, "after_again": after_again,
            "unplaced": unplaced, "grades": grade_run, "grade_rows": grade_rows, "feedback": feedback_run,
            "feedback_entries": feedback_entries}


# --- Canvas -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def canvas(tmp_path_factory, notebooks):
    course = _course(tmp_path_factory, "canvas")
    _zip(course.root / "downloaded" / ASSIGNMENT / "archive" / "submissions.zip", [
        ("obrienzoe_101_5001_ch01_notation.ipynb", notebooks["solved"], TIMES["on time"]),
        ("obrienzoe_101_5001_my notes.pdf", b"%PDF-1.4", TIMES["on time"]),
        ("picardjeanluc_LATE_102_5002_ch01_notation (1).ipynb", notebooks["solved"], TIMES["late"]),
        ("nguyenli_103_5003_ch01_notation.ipynb", notebooks["blank"], TIMES["on time"]),
        ("nguyenli_103_5003_ch01_notation-1.ipynb", notebooks["solved"], TIMES["resubmitted"]),
        ("strangerx_999_5009_ch01_notation.ipynb", notebooks["solved"], TIMES["on time"]),
        ("ch01_notation.ipynb", notebooks["solved"], TIMES["on time"]),
    ])
    return course, _round_trip(course, "canvas")


def test_canvas_places_each_roster_students_newest_notebook(canvas, notebooks):
    course, result = canvas
    files = result["after_first"]
    assert sorted(k for k in files if k.endswith(".ipynb")) == [
        f"{s}/{ASSIGNMENT}/{NOTEBOOK}" for s in ("jeanluc", "li", "zoe")]
    assert files[f"li/{ASSIGNMENT}/{NOTEBOOK}"] == notebooks["solved"], "the resubmission replaces the first try"
    assert files[f"jeanluc/{ASSIGNMENT}/timestamp.txt"].decode().startswith("2026-12-01 09:15:00")
    assert files[f"zoe/{ASSIGNMENT}/timestamp.txt"].decode().startswith("2026-11-30 10:00:00")
    assert "(late, says the LMS)" in result["first"].output
    assert "is older than a resubmission" in result["first"].output


def test_canvas_reports_every_file_it_cannot_place(canvas):
    _, result = canvas
    assert result["first"].returncode == 1
    report = result["unplaced"]
    assert "my notes.pdf" in report and "not a notebook" in report
    assert "strangerx_999" in report and "999" in report and "not on the roster" in report
    assert "submissions/ch01_notation.ipynb,,,,,,,the file name is not one Canvas gives" in report
    assert result["first"].output.count("NOT COLLECTED") == 3


def test_collecting_the_same_archive_twice_changes_nothing(canvas):
    _, result = canvas
    assert result["after_again"] == result["after_first"]
    assert result["again"].returncode == result["first"].returncode


def test_canvas_grade_csv_has_canvas_columns_and_leaves_the_absent_empty(canvas):
    course, result = canvas
    header, *rows = result["grade_rows"]
    assert header == [*lms.CANVAS_COLUMNS, ASSIGNMENT]
    by_id = {row[1]: row for row in rows}
    assert set(by_id) == {"101", "102", "103", "104"}
    assert by_id["104"][-1] == "", "no submission: an empty cell, not a zero"
    assert by_id["101"][0] == "O'Brien, Zoë"
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}") as gb:
        for student, canvas_id in (("zoe", "101"), ("li", "103"), ("jeanluc", "102")):
            submission = gb.find_submission(ASSIGNMENT, student)
            expected = max(0.0, submission.score - submission.late_submission_penalty)
            assert float(by_id[canvas_id][-1]) == pytest.approx(expected)
        assert gb.find_submission(ASSIGNMENT, "zoe").score == gb.find_assignment(ASSIGNMENT).max_score


def test_canvas_feedback_names_start_with_canvas_prefix(canvas):
    _, result = canvas
    assert result["feedback"].returncode == 0
    assert result["feedback_entries"] == [
        f"nguyenli_103_5003_{ASSIGNMENT}_feedback.html",
        f"obrienzoe_101_5001_{ASSIGNMENT}_feedback.html",
        f"picardjeanluc_LATE_102_5002_{ASSIGNMENT}_feedback.html",
    ]


# --- Moodle -----------------------------------------------------------------------------------------

WORKSHEET_HEADER = ["Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade",
                    "Grade can be changed", "Last modified (submission)", "Last modified (grade)", "Feedback comments"]


@pytest.fixture(scope="module")
def moodle(tmp_path_factory, notebooks):
    course = _course(tmp_path_factory, "moodle")
    rows = [("Participant 7001", "Zoë O'Brien", "zoe.obrien@uni.example"),
            ("Participant 7002", "Jean Luc Picard", "JL.Picard@uni.example"),
            ("Participant 7003", "Li Nguyễn", "li.nguyen@uni.example"),
            ("Participant 7004", "Ada Absent", "ada@uni.example"),
            ("Participant 7009", "Sam Stranger", "sam@elsewhere.example")]
    with (course.root / "worksheet.csv").open("w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle)
        writer.writerow(WORKSHEET_HEADER)
        for identifier, name, email in rows:
            writer.writerow([identifier, name, email, "Submitted for grading", "", "10.00", "Yes", "", "", ""])
    archive = course.root / "downloaded" / ASSIGNMENT / "archive"
    _zip(archive / "MLP-ch01_notation-42.zip", [  # Moodle 4.1+: a folder per student
        ("Zoë O'Brien_7001_assignsubmission_file/ch01_notation.ipynb", notebooks["solved"], TIMES["on time"]),
        ("Jean Luc Picard_7002_assignsubmission_file/ch01_notation.ipynb", notebooks["blank"], TIMES["late"]),
        ("Sam Stranger_7009_assignsubmission_file/ch01_notation.ipynb", notebooks["solved"], TIMES["on time"]),
        ("Li Nguyễn_7003_assignsubmission_file/answers.txt", b"see notebook", TIMES["on time"]),
    ])
    _zip(archive / "MLP-ch01_notation-42-later.zip", [  # downloaded again later: Li's notebook, flat names
        ("Li Nguyễn_7003_assignsubmission_file_ch01_notation.ipynb", notebooks["solved"], TIMES["resubmitted"]),
    ])
    return course, _round_trip(course, "moodle")


def test_moodle_places_notebooks_by_participant_and_worksheet(moodle, notebooks):
    _, result = moodle
    files = result["after_first"]
    assert sorted(k for k in files if k.endswith(".ipynb")) == [
        f"{s}/{ASSIGNMENT}/{NOTEBOOK}" for s in ("jeanluc", "li", "zoe")]
    assert files[f"jeanluc/{ASSIGNMENT}/{NOTEBOOK}"] == notebooks["blank"]
    assert files[f"li/{ASSIGNMENT}/timestamp.txt"].decode().startswith("2026-11-30 11:30:00")
    report = result["unplaced"]
    assert "answers.txt" in report and "Sam Stranger_7009" in report
    assert result["after_again"] == result["after_first"]


def test_moodle_worksheet_gets_grades_only_where_there_is_a_submission(moodle):
    course, result = moodle
    header, *rows = result["grade_rows"]
    assert header == WORKSHEET_HEADER
    grade = {row[0]: row[header.index("Grade")] for row in rows}
    assert grade["Participant 7004"] == "" and grade["Participant 7009"] == ""
    assert float(grade["Participant 7001"]) > float(grade["Participant 7002"])
    assert float(grade["Participant 7003"]) == float(grade["Participant 7001"])


def test_moodle_feedback_zip_uses_moodle_folders(moodle):
    _, result = moodle
    assert result["feedback_entries"] == [
        f"Jean Luc Picard_7002_assignsubmission_file/{ASSIGNMENT}_feedback.html",
        f"Li Nguyễn_7003_assignsubmission_file/{ASSIGNMENT}_feedback.html",
        f"Zoë O'Brien_7001_assignsubmission_file/{ASSIGNMENT}_feedback.html",
    ]


def test_every_command_of_the_guide_section_ran(canvas, moodle):
    ran = {r.command for course, _ in (canvas, moodle) for r in course.history}
    commands = guide_commands("instructor_guide.md", only=LMS_SECTION)
    assert len(commands) == 6
    assert not [c for c in commands if c not in ran]


# --- without a course: bad input -----------------------------------------------------------------------


def test_roster_errors_name_the_file_and_line(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text("student_id,canvas_user_id\nalice,1\nalice,2\n", encoding="utf-8")
    with pytest.raises(lms.LMSError, match=r"roster.csv, line 3: student 'alice' appears twice"):
        lms.read_roster(path)
    path.write_text("name,canvas_user_id\nalice,1\n", encoding="utf-8")
    with pytest.raises(lms.LMSError, match="needs a student_id column"):
        lms.read_roster(path)
    path.write_text("student_id\n../etc\n", encoding="utf-8")
    with pytest.raises(lms.LMSError, match="line 2: '../etc' is not a usable student ID"):
        lms.read_roster(path)


def test_unsafe_archive_paths_are_refused_not_extracted(tmp_path):
    archive, extracted = tmp_path / "archive", tmp_path / "extracted"
    extracted.mkdir()
    _zip(archive / "evil.zip", [("../outside.ipynb", b"{}", TIMES["on time"]),
                                ("fine_1_2_ch01_notation.ipynb", b"{}", TIMES["on time"])])
    extractor = lms.TimedZipExtractor()
    extractor.extract(str(archive), str(extracted))
    assert not (tmp_path / "outside.ipynb").exists()
    assert extractor.refused == [("evil.zip:../outside.ipynb", "unsafe path in the archive")]
    kept = extracted / "evil" / "fine_1_2_ch01_notation.ipynb"
    assert dt.datetime.fromtimestamp(kept.stat().st_mtime, dt.timezone.utc) == TIMES["on time"].replace(
        tzinfo=dt.timezone.utc)


def test_participant_id_reads_the_number_in_any_language():
    assert lms.participant_id("Participant 1234567") == "1234567"
    assert lms.participant_id("Teilnehmer/in 88") == "88"
    assert lms.participant_id("") == ""


def test_write_rows_round_trips_accents(tmp_path):
    path = tmp_path / "grades.csv"
    lms.write_rows(path, [["Student", "Grade"], ["Nguyễn, Li", "7"]])
    assert list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig")))) == [["Student", "Grade"], ["Nguyễn, Li", "7"]]
