"""Grading a class: stock serial ``nbgrader autograde`` against ``python -m grading autograde``, side by side.

Two workloads, each graded twice from scratch in two temporary copies of the course, once by each
command, in the same run on the same machine:

- chapter 1 (NumPy only): 100 submissions, the realistic fake students of the pipeline tests in turn
  (without the one stuck in an infinite loop, which would add the 30-second cell timeout);
- the training exercise (Keras): 30 submissions, two of every three the solution, the third the
  untouched release.

Every kernel runs in the grading sandbox, in both commands. The first table gives each command's
wall-clock time (start-up included), the speed-up against its target, whether both gave every student
the same marks, the CPU time of each command's whole process tree (kernels included) per notebook, how
busy it kept the machine's cores (CPU time / (wall time x cores)), and the peak resident memory of a
worker process, alone and with the kernel it runs (sampled every 0.2 s). The second gives the mean
seconds per submission of each grading phase (`grading.report.PHASES`), as each command's grading code
recorded them in ``reports/``. Last comes the estimate for a 10,000-student week on 100 Dask workers,
from the measured core-seconds. Uses full MNIST where MNIST_DIR or the cache has it, the embedded
sample otherwise. Run from anywhere:
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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

from grading.report import PHASES

#: The exercise that trains a Keras model (chapter 6's, whatever its number).
TRAINING = next(name for name in ASSIGNMENTS if name.endswith("_training"))
#: The speed-up over stock nbgrader each workload must reach on a 2-core machine (issue 19), and how busy
#: the cores must be kept.
TARGETS = {CH01: 3.0, TRAINING: 2.5}
TARGET_BUSY = 0.85
#: The week the estimate is for: every student submits each of this many assignments once.
WEEK = {"students": 10_000, "assignments": 7, "workers": 100}


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


class CpuMeter:
    """CPU seconds of everything this process starts, the sandboxed kernels included.

    Where a cgroup v1 ``cpuacct`` hierarchy can be written, this process moves into a cgroup of its own
    there, which every process it starts inherits (the sandbox makes cgroups in other hierarchies
    only): the count includes a process whatever becomes of its parent. Otherwise it falls back on
    the CPU time of the children waited for, which misses a kernel whose sandbox was killed before
    it could wait for it (its processes are then reaped by init).
    """

    ROOT = Path("/sys/fs/cgroup/cpuacct")

    def __init__(self):
        self.folder = self.ROOT / f"bench-autograde-{os.getpid()}"
        try:
            self.folder.mkdir()
            (self.folder / "cgroup.procs").write_text(str(os.getpid()))
            self.method = "cgroup cpuacct"
        except OSError:
            self.folder, self.method = None, "children waited for (kernels killed before their sandbox may be missed)"

    def seconds(self) -> float:
        if self.folder is None:
            usage = resource.getrusage(resource.RUSAGE_CHILDREN)
            return usage.ru_utime + usage.ru_stime
        own = resource.getrusage(resource.RUSAGE_SELF)  # this process (the memory sampler) is no command's
        return int((self.folder / "cpuacct.usage").read_text()) / 1e9 - own.ru_utime - own.ru_stime

    def close(self) -> None:
        if self.folder is not None:
            (self.ROOT / "cgroup.procs").write_text(str(os.getpid()))
            for _ in range(50):  # the last processes of the commands may still be leaving it
                try:
                    self.folder.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)


def _phases(course: Course, assignment: str) -> dict[str, float]:
    """Mean seconds per submission of each phase, from the timings the grading code wrote in reports/."""
    reports = [json.loads(p.read_text(encoding="utf-8"))
               for p in (course.root / "reports" / assignment).glob("*.json")]
    return {phase: sum(r.get("timings", {}).get(phase, 0.0) for r in reports) / max(1, len(reports))
            for phase in PHASES if any(phase in r.get("timings", {}) for r in reports)}


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


def _workload(tmp: Path, assignment: str, count: int, workers: int | None, cpu: CpuMeter) -> dict:
    courses = {}
    for kind in ("stock", "parallel"):
        course = courses[kind] = Course.copy_from_repo(tmp / kind / assignment)
        course.run(f"nbgrader generate_assignment {assignment} --force")
        names = _submissions(course, assignment, count)
    before = cpu.seconds()
    stock = courses["stock"].run(f"nbgrader autograde {assignment}", timeout=7200)
    stock_cpu, before = cpu.seconds() - before, cpu.seconds()
    seconds, sampler, output = _parallel(courses["parallel"], assignment, workers)
    parallel_cpu = cpu.seconds() - before
    marks = {kind: _grades(course, assignment) for kind, course in courses.items()}
    for kind in marks:
        if sorted(marks[kind]) != sorted(names):
            sys.exit(f"{kind} left {sorted(set(names) - set(marks[kind]))} ungraded:\n"
                     f"{(stock.output if kind == 'stock' else output)[-3000:]}")
    return {"assignment": assignment, "count": count, "stock": stock.seconds, "parallel": seconds,
            "stock_cpu": stock_cpu, "parallel_cpu": parallel_cpu,
            "phases": {kind: _phases(course, assignment) for kind, course in courses.items()},
            "same": marks["stock"] == marks["parallel"], "workers": len(sampler.alone),
            "alone": max(sampler.alone.values(), default=0), "tree": max(sampler.tree.values(), default=0)}


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))


def _busy(cpu: float, seconds: float) -> str:
    return f"{cpu / (seconds * (os.cpu_count() or 1)):.0%}"


def _keras(assignment: str) -> bool:
    """Whether an assignment's solution imports TensorFlow or Keras (it then costs like the training one)."""
    from nbgrader_fixtures.course import REPO_ROOT, notebook_name

    text = (REPO_ROOT / "solutions" / assignment / notebook_name(assignment)).read_text(encoding="utf-8")
    return any(f"import {m}" in text or f"from {m}" in text for m in ("tensorflow", "keras"))


def week_estimate(rows: list[dict]) -> list[str]:
    """A 10,000-student week on 100 workers, from this run's core-seconds per notebook, with its assumptions."""
    cost = {r["assignment"]: r["parallel_cpu"] / r["count"] for r in rows}
    busy = sum(r["parallel_cpu"] for r in rows) / sum(r["parallel"] * (os.cpu_count() or 1) for r in rows)
    gradebook = {r["assignment"]: r["phases"]["parallel"].get("gradebook", 0.0) for r in rows}
    keras = [a for a in ASSIGNMENTS if _keras(a)]
    share = len(keras) / len(ASSIGNMENTS)
    numpy_cost, keras_cost = cost.get(CH01, cost.get(TRAINING)), cost.get(TRAINING, cost.get(CH01))
    per_submission = (1 - share) * numpy_cost + share * keras_cost
    submissions = WEEK["students"] * WEEK["assignments"]
    core_hours = submissions * per_submission / 3600
    compute_hours = core_hours / (WEEK["workers"] * busy)
    write_hours = submissions * max(gradebook.values()) / 3600  # one coordinator writes every result
    return [
        f"A {WEEK['students']:,}-student week ({WEEK['assignments']} assignments, one submission each: "
        f"{submissions:,} notebooks) on {WEEK['workers']} Dask workers, one core each:",
        f"  {per_submission:.2f} core-s per notebook ({len(keras)} of the course's {len(ASSIGNMENTS)} exercises "
        f"use Keras and cost like {TRAINING}, {cost.get(TRAINING, numpy_cost):.2f} core-s; the others like "
        f"{CH01}, {cost.get(CH01, keras_cost):.2f} core-s, both measured here with start-up and the "
        "solution's run included)",
        f"  = {core_hours:.1f} core-hours; at the {busy:.0%} busy measured here, {compute_hours:.1f} h of "
        f"wall time; the coordinator's gradebook writes ({max(gradebook.values()) * 1000:.0f} ms per "
        f"notebook, one after another) take {write_hours:.1f} h alongside, so about "
        f"{max(compute_hours, write_hours):.1f} h in all",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ch01", type=int, default=100, help="chapter 1 submissions (default 100)")
    parser.add_argument("--training", type=int, default=30, help=f"{TRAINING} submissions (default 30)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    cpu = CpuMeter()
    try:
        with tempfile.TemporaryDirectory(prefix="bench_autograde_") as tmp:
            rows = [_workload(Path(tmp), assignment, count, args.workers, cpu)
                    for assignment, count in ((CH01, args.ch01), (TRAINING, args.training)) if count]
    finally:
        cpu.close()
    load_after = os.getloadavg()[0]

    cores = os.cpu_count() or 1
    table = [("assignment", "notebooks", "command", "wall (s)", "speed-up", "target", "same marks",
              "core-s/notebook", "CPU busy", "workers", "worker MiB", "with kernel MiB")]
    for r in rows:
        speedup = r["stock"] / r["parallel"]
        met = "met" if speedup >= TARGETS[r["assignment"]] else "NOT met"
        table.append((r["assignment"], str(r["count"]), "nbgrader", f"{r['stock']:.0f}", "", "", "",
                      f"{r['stock_cpu'] / r['count']:.2f}", _busy(r["stock_cpu"], r["stock"]), "1", "", ""))
        table.append(("", "", "parallel", f"{r['parallel']:.0f}", f"{speedup:.1f}x",
                      f">={TARGETS[r['assignment']]:.1f}x {met}",
                      "yes" if r["same"] else "NO", f"{r['parallel_cpu'] / r['count']:.2f}",
                      _busy(r["parallel_cpu"], r["parallel"]), str(r["workers"]), f"{r['alone'] / 2**20:.0f}",
                      f"{r['tree'] / 2**20:.0f}"))
    _print_table(table)
    print(f"{cores} cores; load average {load_before:.1f} before, {load_after:.1f} after "
          f"(other work on the machine slows both commands); target CPU busy >= {TARGET_BUSY:.0%}; "
          f"CPU time counted by {cpu.method}")
    print()
    print("Mean seconds per submission of each phase, as the grading code recorded them:")
    phases = [("phase", *(f"{r['assignment']} {kind}" for r in rows for kind in ("nbgrader", "parallel")))]
    for phase in PHASES:
        phases.append((phase, *(f"{r['phases'][kind][phase]:.3f}" if phase in r["phases"][kind]
                                                 else "-" for r in rows for kind in ("stock", "parallel"))))
    _print_table(phases)
    print("\n".join(f"  {phase}: {meaning}" for phase, meaning in PHASES.items()))
    print()
    print("\n".join(week_estimate(rows)))

if __name__ == "__main__":
    main()
