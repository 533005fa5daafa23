"""The per-submission report: what grading caught, for the instructor (never sent to students).

One JSON file per submission, ``reports/<assignment>/<student>.json`` in the course folder, written
while nbgrader autogrades, plus one line per flagged submission in the log. Flags:

| flag | meaning |
|---|---|
| ``unsandboxed`` | graded with ``--Sandbox.enabled=False`` |
| ``test_cells_edited`` | a locked cell's source differed from the release (restored before grading) |
| ``test_cells_deleted`` | a graded or locked cell was missing (put back before grading) |
| ``cells_duplicated`` | a graded cell appeared more than once (the copies were made plain cells) |
| ``metadata_changed`` | a cell's nbgrader metadata (points, type, lock, role, id) was edited |
| ``records_missing`` | a test cell raised nothing yet some hidden test did not record: tests did not run as written |
| ``records_forged`` | record outputs outside test cells, invalid ones, or more than the tests make |
| ``measured_differs`` | a number the submission reports about its model differs from what the grader measures running that model |
| ``wrong_without_error`` | a test cell raised nothing but its results were wrong: fooled or hard-coded checks |
| ``kernel_died`` / ``wall_clock`` / ``cell_timeout`` | the kernel died, ran out of time, or a cell was stopped |
| ``output_dropped`` | the submission printed more than the grader keeps |
| ``static_scan`` | answer cells use constructs the exercises never need, or rebind what other cells share (see ``scan``) |
| ``course_helper`` | an answer cell imports or calls a helper of ``course_utils``: the answer is not the student's own |
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

FLAGS = (
    "unsandboxed", "test_cells_edited", "test_cells_deleted", "cells_duplicated", "metadata_changed",
    "records_missing", "records_forged", "measured_differs", "wrong_without_error", "kernel_died", "wall_clock",
    "cell_timeout", "output_dropped", "static_scan", "course_helper",
)

#: Where a submission's grading spends its time, in the order it happens: `Report.timings` holds the
#: seconds of each (wall clock), so that the benchmark and an instructor can see what to make faster.
PHASES = {
    "kernel_start": "sandbox and kernel start (until the kernel answers)",
    "imports": "cells that import, as the kernel timed them",
    "cells": "the other cells, as the kernel timed them",
    "waiting": "waiting on messages: each cell's wall clock beyond the kernel's own time",
    "kernel_stop": "stopping the kernel and its sandbox",
    "nbgrader": "nbgrader's preprocessors (repairs, restores, output limits)",
    "judging": "judging the records against the solution's, the scan",
    "gradebook": "writing the gradebook (the course's command; nbgrader's own steps are not timed)",
}


@dataclass
class Report:
    assignment: str
    student: str
    notebook: str
    flags: dict[str, list[str]] = field(default_factory=dict)  # flag -> details
    tests: dict[str, dict] = field(default_factory=dict)  # grade_id -> verdict and points
    scan: dict[str, list[str]] = field(default_factory=dict)
    sandbox: str = "bubblewrap"
    timings: dict[str, float] = field(default_factory=dict)  # phase (`PHASES`) -> seconds

    def time(self, phases: dict[str, float]) -> None:
        """Add seconds to phases (a notebook graded in several steps adds each step's)."""
        for phase, seconds in phases.items():
            if phase not in PHASES:
                raise ValueError(f"unknown phase {phase!r}")
            self.timings[phase] = self.timings.get(phase, 0.0) + seconds

    def flag(self, name: str, detail: str) -> None:
        if name not in FLAGS:
            raise ValueError(f"unknown flag {name!r}")
        details = self.flags.setdefault(name, [])
        if detail not in details:
            details.append(detail)

    @property
    def score(self) -> float:
        return sum(t["score"] for t in self.tests.values())

    def summary(self) -> str:
        flags = ", ".join(sorted(self.flags)) or "nothing flagged"
        return f"{self.student}/{self.assignment}: {self.score:g} points; {flags}"

    @staticmethod
    def path(course_root: Path, assignment: str, student: str) -> Path:
        return Path(course_root) / "reports" / assignment / f"{student}.json"

    def save(self, course_root: Path) -> Path:
        path = self.path(course_root, self.assignment, self.student)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.part")
        tmp.write_text(json.dumps(asdict(self), indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, course_root: Path, assignment: str, student: str, notebook: str) -> Report:
        path = cls.path(course_root, assignment, student)
        if path.is_file():
            raw = json.loads(path.read_text(encoding="utf-8"))
            if raw.get("notebook") == notebook:
                return cls(**raw)
        return cls(assignment=assignment, student=student, notebook=notebook)
