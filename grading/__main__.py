"""``python -m grading autograde ASSIGNMENT``: grade every submission of an assignment (or ``"*"``) at once.

``python -m grading collect``, ``lms-grades`` and ``lms-feedback``: the round trip through Canvas or Moodle
(`grading.lms`): their submission archives in, their grade CSV and feedback zip out.

Run it in the course folder, like nbgrader. It reads ``nbgrader_config.py`` (and ``--Class.trait=value``
settings after the options, as nbgrader takes them), grades on a LocalCluster of one worker process
per core or on the Dask cluster at ``--scheduler``, writes the gradebook, ``autograded/`` and
``reports/`` as ``nbgrader autograde`` does, and prints a summary. Exit status 0 when every submission
was graded or skipped, 1 when some failed or the batch stopped (`grading.batch`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings

USAGE_EXAMPLES = """examples:
  python -m grading autograde ch01_notation                 every submission of one assignment
  python -m grading autograde "*" --workers 4               every assignment, 4 worker processes
  python -m grading autograde ch01_notation --force         grade again what was graded
  python -m grading autograde "*" --scheduler tcp://host:8786   on a running Dask cluster
  python -m grading collect ch01_notation --lms canvas --roster roster.csv     an LMS's archive in
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grading", description=__doc__.splitlines()[0],
                                     epilog=USAGE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    autograde = commands.add_parser("autograde", help="grade submissions in the sandbox, in parallel",
                                    epilog=USAGE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    autograde.add_argument("assignment", help='an assignment, or a pattern ("*": every assignment)')
    autograde.add_argument("--student", default="*", help="only these students (a pattern; default: all)")
    autograde.add_argument("--force", action="store_true", help="grade again submissions already graded")
    autograde.add_argument("--workers", type=int, default=None,
                           help="worker processes of the local cluster (default: one per core)")
    autograde.add_argument("--scheduler", default=None,
                           help="address of a running Dask scheduler (tcp://HOST:8786) to grade on instead")
    autograde.add_argument("--course", default=".", help="the course folder (default: the current one)")
    autograde.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_lms_commands(commands)
    args, extra = parser.parse_known_args(argv)
    if args.command != "autograde":
        if extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return _lms_command(args)
    bad = [a for a in extra if not (a.startswith("--") and "." in a.split("=")[0] and "=" in a)]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)} (settings look like --Sandbox.memory_mb=2048)")

    from sqlalchemy.exc import SAWarning
    from traitlets.config.loader import KVArgParseConfigLoader

    from grading.batch import BatchError, Course, grade_batch

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    # nbgrader's own noise on every autograde (instructor guide, "Autograding"), not ours
    warnings.filterwarnings("ignore", category=SAWarning)
    overrides = KVArgParseConfigLoader(extra).load_config() if extra else None
    try:
        course = Course.load(args.course, overrides)
        result = grade_batch(course, args.assignment, args.student, force=args.force, workers=args.workers,
                             scheduler=args.scheduler, progress=not args.no_progress)
    except BatchError as error:
        print(f"python -m grading: {error}", file=sys.stderr)
        return 1
    if not result.outcomes:
        print(f"no submissions match {args.assignment!r} in {course.root / 'submitted'}")
        return 1
    print(result.table())
    return 0 if result.ok else 1


def _add_lms_commands(commands) -> None:
    collect = commands.add_parser("collect", help="put an LMS's submission archive into submitted/")
    collect.add_argument("assignment")
    collect.add_argument("--lms", required=True, choices=("canvas", "moodle"))
    collect.add_argument("--roster", required=True, help="roster CSV: student_id and the LMS's IDs")
    collect.add_argument("--worksheet", help="Moodle: its grading worksheet CSV (participant IDs to e-mails)")
    collect.add_argument("--timezone", default="UTC", help="the LMS server's time zone (default: UTC)")
    grades = commands.add_parser("lms-grades", help="write the CSV an LMS's grade import takes")
    grades.add_argument("assignment")
    grades.add_argument("--lms", required=True, choices=("canvas", "moodle"))
    grades.add_argument("--roster", required=True)
    grades.add_argument("--out", required=True, help="the CSV file to write")
    grades.add_argument("--worksheet", help="Moodle: the grading worksheet to fill in (required)")
    grades.add_argument("--column", help="Canvas: the assignment's column, e.g. 'ch01_notation (4242)'")
    grades.add_argument("--zeros", action="store_true", help="0 for students without a submission (default: empty)")
    feedback = commands.add_parser("lms-feedback", help="zip the feedback pages for an LMS's bulk upload")
    feedback.add_argument("assignment")
    feedback.add_argument("--lms", required=True, choices=("canvas", "moodle"))
    feedback.add_argument("--out", required=True, help="the zip file to write")
    for command in (collect, grades, feedback):
        command.add_argument("--course", default=".", help="the course folder (default: the current one)")


def _lms_command(args) -> int:
    from grading import lms
    from grading.batch import BatchError, Course

    try:
        if args.command == "collect":
            result = lms.collect(args.course, args.assignment, args.lms, args.roster, args.worksheet, args.timezone)
            for placement in result.kept:
                late = " (late, says the LMS)" if placement.late else ""
                print(f"{placement.student_id}: {placement.file}, handed in {placement.timestamp}{late}")
            for placement in result.placements:
                if placement.kept == "older":
                    print(f"{placement.student_id}: {placement.file} is older than a resubmission: not collected")
            for placement in result.unplaced:
                print(f"NOT COLLECTED: {placement.file}: {placement.reason}", file=sys.stderr)
            print(f"{len(result.kept)} notebooks collected, {len(result.unplaced)} files not placed "
                  f"(downloaded/{args.assignment}/unplaced.csv)")
            return 1 if result.unplaced else 0
        if args.command == "lms-grades":
            roster = lms.read_roster(args.roster)
            course = Course.load(args.course)
            scores, _ = lms.final_scores(course.db_url, args.assignment)
            if args.lms == "canvas":
                rows = lms.canvas_grade_rows(roster, scores, args.column or args.assignment, args.zeros)
            else:
                if not args.worksheet:
                    raise lms.LMSError("Moodle's grade import fills in its grading worksheet: pass --worksheet")
                header, worksheet_rows = lms.read_moodle_worksheet(args.worksheet)
                rows = lms.moodle_grade_rows(roster, scores, header, worksheet_rows, args.zeros)
            lms.write_rows(args.out, rows)
            grade = rows[0].index(lms.MOODLE_GRADE) if args.lms == "moodle" else -1
            print(f"{args.out}: {len(rows) - 1} students, {sum(1 for row in rows[1:] if row[grade])} with a grade")
            return 0
        entries, missing = lms.feedback_archive(args.course, args.assignment, args.lms, args.out)
        print(f"{args.out}: {len(entries)} feedback pages")
        for student in missing:
            print(f"NO FEEDBACK PAGE for {student}: run nbgrader generate_feedback {args.assignment}", file=sys.stderr)
        return 1 if missing else 0
    except (lms.LMSError, BatchError) as error:
        print(f"python -m grading {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
