"""How long nbgrader takes to autograde the exercises, in a temporary copy of the course.

Prints one row per assignment (one student who submits the solution: the whole `nbgrader autograde`
command, start-up included) and one row for a batch of 20 submissions of chapter 1's assignment (the
realistic fake students of the pipeline tests, in turn, without the one stuck in an infinite loop,
which would add the 30-second cell timeout). Every kernel runs in the grading sandbox. Uses full MNIST
where MNIST_DIR or the cache has it, the embedded sample otherwise. Run from anywhere:

    .venv/bin/python benchmarks/bench_autograde.py [--batch 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from itertools import cycle, islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from nbgrader_fixtures import submissions as sub
from nbgrader_fixtures.course import ASSIGNMENTS, Course
from nbgrader_fixtures.students import ASSIGNMENT as BATCH_ASSIGNMENT
from nbgrader_fixtures.students import REALISTIC


def _graded(course: Course, student: str, assignment: str) -> bool:
    return (course.root / "autograded" / student / assignment / f"{assignment}.ipynb").is_file()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=20, help="submissions in the batch (default 20)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_autograde_") as tmp:
        course = Course.copy_from_repo(Path(tmp) / "course")
        generate = course.run('nbgrader generate_assignment "*" --force')
        rows = [("generate_assignment, all", 1, generate.seconds)]

        for assignment in ASSIGNMENTS:
            release = sub.read(course.release_path(assignment))
            answers = sub.solution_answers(sub.read(course.source_path(assignment)))
            course.submit("solution", assignment, sub.fill(release, answers))
            result = course.run(f"nbgrader autograde {assignment} --student solution")
            if not _graded(course, "solution", assignment):
                sys.exit(f"autograding {assignment} failed:\n{result.output[-3000:]}")
            rows.append((f"autograde {assignment}", 1, result.seconds))

        release = sub.read(course.release_path(BATCH_ASSIGNMENT))
        solution = sub.solution_answers(sub.read(course.source_path(BATCH_ASSIGNMENT)))
        kinds = [s for s in REALISTIC if s.name != "infinite_loop"]
        names = []
        for i, student in enumerate(islice(cycle(kinds), args.batch)):
            name = f"s{i:02d}_{student.name}"
            course.submit(name, BATCH_ASSIGNMENT, student.make(release, solution))
            names.append(name)
        batch = course.run(f"nbgrader autograde {BATCH_ASSIGNMENT}")
        missing = [n for n in names if not _graded(course, n, BATCH_ASSIGNMENT)]
        if missing:
            sys.exit(f"the batch left {missing} ungraded:\n{batch.output[-3000:]}")
        rows.append((f"autograde {BATCH_ASSIGNMENT}, batch", args.batch, batch.seconds))

    width = max(len(name) for name, *_ in rows)
    print(f"{'command':<{width}}  {'notebooks':>9}  {'seconds':>8}  {'s/notebook':>10}")
    for name, count, seconds in rows:
        print(f"{name:<{width}}  {count:>9}  {seconds:>8.1f}  {seconds / count:>10.1f}")


if __name__ == "__main__":
    main()
