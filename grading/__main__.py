"""``python -m grading autograde ASSIGNMENT``: grade every submission of an assignment (or ``"*"``) at once.

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
    args, extra = parser.parse_known_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
