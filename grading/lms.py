"""The round trip through a learning management system: archives in, grades and feedback out.

Canvas ("Download Submissions") and Moodle ("Download all submissions") each hand the instructor one zip
file per assignment, with file names of their own:

- Canvas: ``<name>[_LATE]_<user id>_<submission id>_<file name>``, where ``<name>`` is the student's
  sortable name, lower case and without spaces, and Canvas adds ``-1``, ``-2``, ... before the
  extension of a file whose name the student had already used.
- Moodle 4.1 and later: a folder ``<Full Name>_<participant id>_assignsubmission_file/`` per student
  with the files in it; Moodle 4.0 and earlier, or with "Download submissions in folders" off, flat
  files ``<Full Name>_<participant id>_assignsubmission_file_<file name>``. The participant ID is
  Moodle's per-assignment ID of the student (the "Identifier" column of its grading worksheet, "Participant
  <id>"), not the user ID.

`collect` runs nbgrader's ``zip_collect`` with the extractor and collector plugins below: each
student's newest notebook goes to ``submitted/<student>/<assignment>/<assignment>.ipynb`` with its
``timestamp.txt`` (the zip entry's time, which both systems set to the upload time), and every file it
cannot place is listed, with the reason, in ``downloaded/<assignment>/unplaced.csv``. `grade_table`
writes the CSV that each system's grade import takes, and `feedback_archive` packs the feedback pages
under the names each system's bulk upload expects.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import re
import shutil
import unicodedata
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath
from zoneinfo import ZoneInfo

from nbgrader.plugins import ExtractorPlugin, FileNameCollectorPlugin
from traitlets import Unicode

LMS_NAMES = ("canvas", "moodle")
#: Roster CSV columns: student_id is required; the others as far as the LMS needs them.
ROSTER_COLUMNS = ("student_id", "first_name", "last_name", "email", "canvas_user_id", "sis_user_id",
                  "sis_login_id", "section")
_STUDENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # a folder name nbgrader and every shell accept
COLLECTED_CSV, UNPLACED_CSV = "collected.csv", "unplaced.csv"
#: Moodle's grading worksheet: the column it matches rows by, and the column it reads the grade from.
MOODLE_IDENTIFIER, MOODLE_GRADE, MOODLE_EMAIL = "Identifier", "Grade", "Email address"
#: Canvas's gradebook CSV: the columns before the assignments, as its export writes them.
CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")


class LMSError(ValueError):
    """A roster, worksheet or archive that cannot be used: the message names the file and the problem."""


# --- the roster --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RosterStudent:
    student_id: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    canvas_user_id: str = ""
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


def read_roster(path: os.PathLike | str) -> list[RosterStudent]:
    """The students of a roster CSV (UTF-8, a header row with ``student_id`` and any of `ROSTER_COLUMNS`)."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            if "student_id" not in header:
                raise LMSError(f"{path}: the roster needs a student_id column (it has {header})")
            unknown = [name for name in header if name not in ROSTER_COLUMNS]
            if unknown:
                raise LMSError(f"{path}: unknown roster columns {unknown}; known: {list(ROSTER_COLUMNS)}")
            students, seen = [], set()
            for line, row in enumerate(reader, start=2):
                values = {name: (row.get(name) or "").strip() for name in header}
                student_id = values["student_id"]
                if not _STUDENT_ID.match(student_id):
                    raise LMSError(f"{path}, line {line}: {student_id!r} is not a usable student ID (letters, "
                                   "digits, '.', '_' and '-', starting with a letter or digit)")
                if student_id in seen:
                    raise LMSError(f"{path}, line {line}: student {student_id!r} appears twice")
                seen.add(student_id)
                students.append(RosterStudent(**values))
    except FileNotFoundError:
        raise LMSError(f"{path}: no such roster file") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise LMSError(f"{path}: not a UTF-8 CSV file ({error})") from None
    return students


def read_moodle_worksheet(path: os.PathLike | str) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of a Moodle grading worksheet ("Download grading worksheet")."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header, rows = list(reader.fieldnames or []), list(reader)
    except FileNotFoundError:
        raise LMSError(f"{path}: no such worksheet file") from None
    except (UnicodeDecodeError, csv.Error) as error:
        raise LMSError(f"{path}: not a UTF-8 CSV file ({error})") from None
    missing = [name for name in (MOODLE_IDENTIFIER, MOODLE_GRADE, MOODLE_EMAIL) if name not in header]
    if missing:
        raise LMSError(f"{path}: a Moodle grading worksheet has the columns {missing}; this file has {header}")
    return header, rows


def participant_id(identifier: str) -> str:
    """``"Participant 1234567"`` (any language: the number is what counts) -> ``"1234567"``."""
    match = re.search(r"(\d+)\s*$", identifier or "")
    return match.group(1) if match else ""


# --- archives in: nbgrader zip_collect's plugins ------------------------------------------------------


def _zip_time(info: zipfile.ZipInfo, timezone: str) -> float:
    """A zip entry's time (local time of the server that wrote it) as a POSIX timestamp."""
    return dt.datetime(*info.date_time, tzinfo=ZoneInfo(timezone)).timestamp()


def _safe_member(name: str) -> PurePosixPath | None:
    """The member's path inside the archive, or None if it would land outside the extraction folder."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts:
        return None
    return path


class TimedZipExtractor(ExtractorPlugin):
    """Extracts each archive into a folder of its own, keeping each file's time from its zip entry.

    nbgrader's own extractor drops the times, which are the only record of when a file was handed in.
    Entries whose path would leave the extraction folder (absolute, or with ``..``) are not extracted;
    `LMSCollector` lists them as unplaced.
    """

    timezone = Unicode("UTC", help="Time zone of the LMS server, in which zip entries record their times").tag(config=True)

    def extract(self, archive_path: str, extracted_path: str) -> None:
        self.refused: list[tuple[str, str]] = []
        for archive in sorted(Path(archive_path).iterdir()):
            if archive.is_dir():
                continue
            if archive.suffix.lower() != ".zip":
                shutil.copy2(archive, Path(extracted_path) / archive.name)  # a loose file keeps its time
                continue
            target = Path(extracted_path) / archive.stem
            target.mkdir(parents=True, exist_ok=True)
            try:
                with zipfile.ZipFile(archive) as bundle:
                    for info in bundle.infolist():
                        member = _safe_member(info.filename)
                        if member is None:
                            self.refused.append((f"{archive.name}:{info.filename}", "unsafe path in the archive"))
                            continue
                        if info.is_dir():
                            continue
                        destination = target.joinpath(*member.parts)
                        destination.parent.mkdir(parents=True, exist_ok=True)
                        with bundle.open(info) as source, destination.open("wb") as out:
                            shutil.copyfileobj(source, out)
                        stamp = _zip_time(info, self.timezone)
                        os.utime(destination, (stamp, stamp))
            except zipfile.BadZipFile:
                self.refused.append((archive.name, "not a readable zip file"))


@dataclass
class Placement:
    """One file of the archive and where it went (or why it went nowhere)."""

    file: str  # path inside the extraction folder
    student_id: str = ""
    lms_id: str = ""  # Canvas user ID or Moodle participant ID
    prefix: str = ""  # the LMS's name for this student's files: feedback goes back under it
    timestamp: str = ""  # UTC, as nbgrader's timestamp.txt holds it
    late: str = ""  # "yes" where the LMS marked the file late (Canvas)
    kept: str = ""  # "yes" for the file collected; "older" for a resubmission it replaced
    reason: str = ""  # why an unplaced file was not collected


class LMSCollector(FileNameCollectorPlugin):
    """Places each extracted file: the student from the roster, the newest notebook of each student kept.

    A subclass knows one LMS's file names (`parse`). Every file is recorded in `placements`, placed or
    not; `collect` writes nothing itself.
    """

    roster = Unicode("", help="Roster CSV mapping the LMS's IDs to student IDs").tag(config=True)
    worksheet = Unicode("", help="Moodle grading worksheet CSV (participant IDs to e-mail addresses)").tag(config=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if not self.roster:
            raise LMSError("no roster: pass --roster ROSTER.csv")
        self.students = read_roster(self.roster)
        self.placements: list[Placement] = []

    def parse(self, relative: PurePosixPath) -> dict[str, str] | None:
        """``{"lms_id", "prefix", "name", "late"}`` from a file's path, or None if it is not this LMS's."""
        raise NotImplementedError

    def student_for(self, parsed: dict[str, str]) -> RosterStudent | None:
        raise NotImplementedError

    def _extracted_root(self) -> Path:
        app = self.parent
        return Path(app._format_collect_path(app.extracted_directory))

    def collect(self, submitted_file: str) -> dict | None:
        relative = PurePosixPath(Path(submitted_file).relative_to(self._extracted_root()).as_posix())
        placement = Placement(file=str(relative))
        self.placements.append(placement)
        inner = PurePosixPath(*relative.parts[1:]) if len(relative.parts) > 1 else relative
        parsed = self.parse(inner)
        if parsed is None:
            placement.reason = f"the file name is not one {self.lms_title} gives"
            return None
        placement.lms_id, placement.prefix = parsed["lms_id"], parsed["prefix"]
        placement.late = "yes" if parsed.get("late") else ""
        if relative.suffix.lower() != ".ipynb":
            placement.reason = "not a notebook (.ipynb)"
            return None
        student = self.student_for(parsed)
        if student is None:
            placement.reason = f"{self.lms_title} ID {parsed['lms_id']} ({parsed['name']}) is not on the roster"
            return None
        mtime = dt.datetime.fromtimestamp(Path(submitted_file).stat().st_mtime, tz=dt.timezone.utc)
        placement.student_id = student.student_id
        placement.timestamp = mtime.strftime("%Y-%m-%d %H:%M:%S UTC")
        assignment = self.parent.coursedir.assignment_id
        # Every assignment is one notebook: whatever the student named the file, it is that notebook.
        return {"student_id": student.student_id, "file_id": f"{assignment}.ipynb",
                "timestamp": placement.timestamp}


class CanvasCollector(LMSCollector):
    """Canvas's "Download Submissions": ``name[_LATE]_userid_submissionid_filename``."""

    lms_title = "Canvas"
    _NAME = re.compile(r"^(?P<name>[^_]*)(?P<late>_LATE)?_(?P<user>\d+)_(?P<submission>\d+)_(?P<file>.+)$",
                       re.IGNORECASE)

    def parse(self, relative: PurePosixPath) -> dict[str, str] | None:
        match = self._NAME.match(relative.name)
        if not match:
            return None
        prefix = relative.name[: match.start("file") - 1]
        return {"lms_id": match["user"], "prefix": prefix, "name": match["name"], "late": bool(match["late"])}

    def student_for(self, parsed):
        return next((s for s in self.students if s.canvas_user_id == parsed["lms_id"]), None)


class MoodleCollector(LMSCollector):
    """Moodle's "Download all submissions", in folders (4.1+) or flat."""

    lms_title = "Moodle"
    _FOLDER = re.compile(r"^(?P<name>[^_]*)_(?P<participant>\d+)_assignsubmission_file$")
    _FLAT = re.compile(r"^(?P<name>[^_]*)_(?P<participant>\d+)_assignsubmission_file_(?P<file>.+)$")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.emails: dict[str, str] = {}
        if self.worksheet:
            _, rows = read_moodle_worksheet(self.worksheet)
            self.emails = {participant_id(row[MOODLE_IDENTIFIER]): row[MOODLE_EMAIL].strip().lower() for row in rows}

    def parse(self, relative: PurePosixPath) -> dict[str, str] | None:
        folder = self._FOLDER.match(relative.parts[0]) if len(relative.parts) > 1 else None
        match = folder or self._FLAT.match(relative.name)
        if not match:
            return None
        prefix = relative.parts[0] if folder else f"{match['name']}_{match['participant']}_assignsubmission_file"
        return {"lms_id": match["participant"], "prefix": prefix, "name": match["name"]}

    def student_for(self, parsed):
        email = self.emails.get(parsed["lms_id"])
        if email:
            return next((s for s in self.students if s.email.lower() == email), None)
        # Without a worksheet: the full name, where exactly one student of the roster has it.
        named = [s for s in self.students if _fold(s.full_name) == _fold(parsed["name"])]
        return named[0] if len(named) == 1 else None


def _fold(name: str) -> str:
    return unicodedata.normalize("NFC", " ".join(name.split())).casefold()


COLLECTORS = {"canvas": CanvasCollector, "moodle": MoodleCollector}


@dataclass
class Collection:
    """What `collect` did: every file of the archives, placed or not."""

    placements: list[Placement]

    @property
    def kept(self) -> list[Placement]:
        return [p for p in self.placements if p.kept == "yes"]

    @property
    def unplaced(self) -> list[Placement]:
        return [p for p in self.placements if p.reason]


def collect(course_root: os.PathLike | str, assignment: str, lms: str, roster: os.PathLike | str,
            worksheet: os.PathLike | str | None = None, timezone: str = "UTC") -> Collection:
    """Place the archives in ``downloaded/<assignment>/archive/`` with nbgrader's zip_collect.

    Collecting the same archives again gives the same ``submitted/`` folders. Writes
    ``downloaded/<assignment>/collected.csv`` and ``unplaced.csv``.
    """
    from nbgrader.apps.zipcollectapp import ZipCollectApp

    if lms not in COLLECTORS:
        raise LMSError(f"unknown LMS {lms!r}: one of {', '.join(LMS_NAMES)}")
    root = Path(course_root).resolve()
    ZoneInfo(timezone)  # an unknown zone fails here, before anything is extracted
    argv = [assignment, "--force", f"--ZipCollectApp.collector_plugin=grading.lms.{COLLECTORS[lms].__name__}",
            "--ZipCollectApp.extractor_plugin=grading.lms.TimedZipExtractor",
            f"--LMSCollector.roster={Path(roster).resolve()}", f"--TimedZipExtractor.timezone={timezone}",
            "--log-level=WARN"]
    if worksheet:
        argv.append(f"--LMSCollector.worksheet={Path(worksheet).resolve()}")
    cwd = os.getcwd()
    os.chdir(root)  # nbgrader reads nbgrader_config.py from the working folder
    try:
        ZipCollectApp.clear_instance()
        app = ZipCollectApp.instance()
        app.initialize(argv)
        app.start()
    finally:
        os.chdir(cwd)
    placements = [Placement(file=name, reason=reason) for name, reason in getattr(app.extractor_plugin_inst, "refused", [])]
    collector = app.collector_plugin_inst
    placed = collector.placements if isinstance(collector, LMSCollector) else []
    _mark_kept(placed)
    placements += placed
    ZipCollectApp.clear_instance()
    folder = root / app.downloaded_directory / assignment
    _write_csv(folder / COLLECTED_CSV, [p for p in placements if not p.reason])
    _write_csv(folder / UNPLACED_CSV, [p for p in placements if p.reason])
    return Collection(placements)


def _mark_kept(placements: list[Placement]) -> None:
    """Each student's newest notebook is the one collected (nbgrader's rule for duplicates)."""
    newest: dict[str, Placement] = {}
    for placement in placements:
        if placement.reason:
            continue
        current = newest.get(placement.student_id)
        if current is None or placement.timestamp >= current.timestamp:
            newest[placement.student_id] = placement
    for placement in placements:
        if not placement.reason:
            placement.kept = "yes" if newest[placement.student_id] is placement else "older"


def _write_csv(path: Path, placements: list[Placement]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([f.name for f in fields(Placement)])
        for placement in sorted(placements, key=lambda p: p.file):
            writer.writerow([getattr(placement, f.name) for f in fields(Placement)])


def read_collected(course_root: os.PathLike | str, assignment: str, downloaded: str = "downloaded") -> list[Placement]:
    """The files the last `collect` placed (``downloaded/<assignment>/collected.csv``)."""
    path = Path(course_root) / downloaded / assignment / COLLECTED_CSV
    if not path.is_file():
        raise LMSError(f"{path}: no record of a collection: collect the assignment from the LMS first")
    with path.open(newline="", encoding="utf-8") as handle:
        return [Placement(**row) for row in csv.DictReader(handle)]


# --- grades out -------------------------------------------------------------------------------------


def final_scores(db_url: str, assignment: str) -> tuple[dict[str, float], float]:
    """Each student's score after any late penalty (as ``nbgrader export`` computes it), and the maximum."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(db_url) as gradebook:
        try:
            record = gradebook.find_assignment(assignment)
        except MissingEntry:
            raise LMSError(f"the gradebook has no assignment {assignment!r}: autograde it first") from None
        scores = {s.student.id: max(0.0, s.score - s.late_submission_penalty) for s in record.submissions}
        return scores, float(record.max_score)


def _cell(score: float | None, zeros: bool) -> str:
    if score is None:
        return "0" if zeros else ""  # empty: the LMS leaves the grade as it is
    return f"{score:g}"


def canvas_grade_rows(roster: list[RosterStudent], scores: dict[str, float], column: str,
                      zeros: bool = False) -> list[list[str]]:
    """Canvas's gradebook import: its five student columns, then one column per assignment."""
    rows = [[*CANVAS_COLUMNS, column]]
    for student in roster:
        name = ", ".join(part for part in (student.last_name, student.first_name) if part)
        rows.append([name, student.canvas_user_id, student.sis_user_id, student.sis_login_id, student.section,
                     _cell(scores.get(student.student_id), zeros)])
    return rows


def moodle_grade_rows(roster: list[RosterStudent], scores: dict[str, float], header: list[str],
                      worksheet_rows: list[dict[str, str]], zeros: bool = False) -> list[list[str]]:
    """Moodle's grading worksheet, its Grade column filled in; rows are matched by e-mail address."""
    by_email = {s.email.lower(): s for s in roster if s.email}
    rows = [header]
    for row in worksheet_rows:
        student = by_email.get(row[MOODLE_EMAIL].strip().lower())
        score = scores.get(student.student_id) if student else None
        if student is None and not zeros:
            cell = row[MOODLE_GRADE]  # not ours to grade: left as Moodle wrote it
        else:
            cell = _cell(score, zeros)
        rows.append([cell if name == MOODLE_GRADE else row.get(name, "") for name in header])
    return rows


def write_rows(path: os.PathLike | str, rows: list[list[str]]) -> None:
    """A CSV that both systems read: UTF-8 with a byte-order mark (Excel and Canvas need it for accents)."""
    path = Path(path)
    if path.exists() and path.is_dir():
        raise LMSError(f"{path} is a folder; give a file name for the CSV")
    with path.open("w", newline="", encoding="utf-8-sig") as handle:
        csv.writer(handle).writerows(rows)


# --- feedback out -------------------------------------------------------------------------------------


def feedback_archive(course_root: os.PathLike | str, assignment: str, lms: str, out: os.PathLike | str,
                     feedback_directory: str = "feedback") -> tuple[list[str], list[str]]:
    """Pack each collected student's feedback page under the name the LMS's bulk upload expects.

    Moodle ("Upload multiple feedback files in a zip"): ``<its folder for the student>/<name>``; Canvas
    ("Re-upload Submissions"): ``<its prefix for the student>_<name>``. Returns (the archive's entries,
    the students collected whose feedback page is missing).
    """
    if lms not in COLLECTORS:
        raise LMSError(f"unknown LMS {lms!r}: one of {', '.join(LMS_NAMES)}")
    root = Path(course_root)
    entries, missing = [], []
    out = Path(out)
    partial = out.with_name(out.name + ".partial")  # a failure never leaves a half-written archive behind
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for placement in read_collected(root, assignment):
            if placement.kept != "yes":
                continue
            page = root / feedback_directory / placement.student_id / assignment / f"{assignment}.html"
            if not page.is_file():
                missing.append(placement.student_id)
                continue
            name = f"{assignment}_feedback.html"
            entry = f"{placement.prefix}/{name}" if lms == "moodle" else f"{placement.prefix}_{name}"
            bundle.write(page, entry)
            entries.append(entry)
    partial.replace(out)
    return entries, missing
