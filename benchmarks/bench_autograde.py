"""Grading a class: stock serial ``nbgrader autograde`` against ``python -m grading autograde``, side by side.

Two workloads, each graded twice from scratch in two temporary copies of the course, once by each
command, in the same run on the same machine:

- chapter 1 (NumPy only): 100 submissions, the realistic fake students of the pipeline tests in turn
  (without the one stuck in an infinite loop, which would add the 30-second cell timeout);
- the training exercise (Keras): 30 submissions, two of every three the solution, the third the
  untouched release.

Every kernel runs in the grading sandbox, in both commands. The table gives each command's wall-clock
time (start-up included), the speed-up, whether both gave every student the same marks, and the peak
resident memory of a worker process, alone and with the kernel it runs (sampled every 0.2 s). Uses full
MNIST where MNIST_DIR or the cache has it, the embedded sample otherwise. Run from anywhere:

    .venv/bin/python benchmarks/bench_autograde.py [--ch01 100] [--training 30] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from itertools import cycle, islice
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from nbgrader_fixtures import submissions as sub
from nbgrader_fixtures.course import ASSIGNMENTS, Course, nbgrader_env
from nbgrader_fixtures.students import ASSIGNMENT as CH01
from nbgrader_fixtures.students import REALISTIC

#: The exercise that trains a Keras model (chapter 6's, whatever its number).
TRAINING = next(name for name in ASSIGNMENTS if name.endswith("_training"))
TARGETS = {CH01: 120.0, TRAINING: 180.0}  # seconds for 100 and 30 submissions, on a 2-core machine


def _submissions(course: Course, assignment: str, count: int) -> list[str]:
    release = sub.read(course.release_path(assignment))
    solution = sub.solution_answers(sub.read(course.source_path(assignment)))
    if assignment == CH01:
        kinds = [(s.name, lambda s=s: s.make(release, solution)) for s in REALISTIC if s.name != "infinite_loop"]
    else:
        kinds = [("solution", lambda: sub.fill(release, solution))] * 2 + [("blank", lambda: release)]
    names = []
    for i, (kind, make) in enumerate(islice(cycle(kinds), count)):
        names.append(f"s{i:03d}_{kind}")
        course.submit(names[-1], assignment, make())
    return names


def _grades(course: Course, assignment: str) -> dict[str, dict[str, float]]:
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course.root / 'gradebook.db'}", "mlp-keras") as gb:
        return {s.student.id: {g.name: g.score for nb in s.notebooks for g in nb.grades}
                for s in gb.find_assignment(assignment).submissions}


class MemorySampler(threading.Thread):
    """Peak RSS of each worker process of a command (LocalCluster's spawned children), alone and with
    everything it started (its sandboxed kernels)."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.root, self.stop, self.alone, self.tree = psutil.Process(pid), threading.Event(), {}, {}

    def run(self):
        while not self.stop.wait(0.2):
            try:
                workers = [p for p in self.root.children() if "spawn_main" in " ".join(p.cmdline())]
            except psutil.Error:
                continue
            for worker in workers:
                try:
                    own = worker.memory_info().rss
                    tree = own + sum(c.memory_info().rss for c in worker.children(recursive=True))
                except psutil.Error:
                    continue
                self.alone[worker.pid] = max(own, self.alone.get(worker.pid, 0))
                self.tree[worker.pid] = max(tree, self.tree.get(worker.pid, 0))


def _parallel(course: Course, assignment: str, workers: int | None) -> tuple[float, MemorySampler, str]:
    command = [sys.executable, "-m", "grading", "autograde", assignment, "--no-progress"]
    command += ["--workers", str(workers)] if workers else []
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=course.root, env=nbgrader_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    sampler = MemorySampler(process.pid)
    sampler.start()
    output, _ = process.communicate()
    seconds = time.perf_counter() - start
    sampler.stop.set()
    return seconds, sampler, output


def _workload(tmp: Path, assignment: str, count: int, workers: int | None) -> dict:
    courses = {}
    for kind in ("stock", "parallel"):
        course = courses[kind] = Course.copy_from_repo(tmp / kind / assignment)
        course.run(f"nbgrader generate_assignment {assignment} --force")
        names = _submissions(course, assignment, count)
    stock = courses["stock"].run(f"nbgrader autograde {assignment}", timeout=7200)
    seconds, sampler, output = _parallel(courses["parallel"], assignment, workers)
    marks = {kind: _grades(course, assignment) for kind, course in courses.items()}
    for kind in marks:
        if sorted(marks[kind]) != sorted(names):
            sys.exit(f"{kind} left {sorted(set(names) - set(marks[kind]))} ungraded:\n"
                     f"{(stock.output if kind == 'stock' else output)[-3000:]}")
    return {"assignment": assignment, "count": count, "stock": stock.seconds, "parallel": seconds,
            "same": marks["stock"] == marks["parallel"], "workers": len(sampler.alone),
            "alone": max(sampler.alone.values(), default=0), "tree": max(sampler.tree.values(), default=0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ch01", type=int, default=100, help="chapter 1 submissions (default 100)")
    parser.add_argument("--training", type=int, default=30, help=f"{TRAINING} submissions (default 30)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_autograde_") as tmp:
        rows = [_workload(Path(tmp), assignment, count, args.workers)
                for assignment, count in ((CH01, args.ch01), (TRAINING, args.training)) if count]
    load_after = os.getloadavg()[0]

    header = ("assignment", "notebooks", "nbgrader (s)", "parallel (s)", "speed-up", "target (s)",
              "same marks", "workers", "worker MiB", "with kernel MiB")
    table = [header] + [(r["assignment"], str(r["count"]), f"{r['stock']:.0f}", f"{r['parallel']:.0f}",
                         f"{r['stock'] / r['parallel']:.1f}x",
                         f"{TARGETS[r['assignment']] * r['count'] / (100 if r['assignment'] == CH01 else 30):.0f}",
                         "yes" if r["same"] else "NO", str(r["workers"]), f"{r['alone'] / 2**20:.0f}",
                         f"{r['tree'] / 2**20:.0f}") for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    print(f"{os.cpu_count()} cores; load average {load_before:.1f} before, {load_after:.1f} after "
          "(other work on the machine slows both commands)")


if __name__ == "__main__":
    main()
