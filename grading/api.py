"""Grade one submission without nbgrader's gradebook: for long-lived grading workers.

`grade_submission` does, in one process and without touching any database, what the nbgrader
preprocessors in ``nbgrader_config.py`` do during ``nbgrader autograde``: repair and restore the
submission's cells from the source notebook, run it in the sandbox, judge every test cell from its
records against the solution's, and report what was caught. A worker that calls it in a loop pays for
its imports once, and for each assignment's reference run once; the caller (which alone writes the
gradebook) gets the graded notebook, the scores and the report.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import nbformat
from nbformat.notebooknode import NotebookNode
from nbgrader.utils import compute_checksum

from grading import preprocessors, sandbox
from grading.kernel import KernelPool, Sandbox, preload_modules
from grading.report import Report


@dataclass
class GradeResult:
    notebook: NotebookNode  # as graded: test cells hold verdicts, hidden tests still in their source
    scores: dict[str, tuple[float | None, float]]  # grade_id -> (score, or None if graded by hand; max)
    report: Report

    @property
    def total(self) -> float:
        return sum(score or 0.0 for score, _ in self.scores.values())


def _source_cells(source: NotebookNode):
    sources, graded, solutions, tasks = {}, {}, set(), {}
    for cell in source.cells:
        meta = cell.metadata.get("nbgrader", {})
        name = meta.get("grade_id")
        if not name or not (meta.get("grade") or meta.get("solution") or meta.get("locked") or meta.get("task")):
            continue
        sources[name] = SimpleNamespace(name=name, cell_type=cell.cell_type, locked=bool(meta.get("locked")),
                                        source=cell.source, checksum=compute_checksum(cell))
        if meta.get("grade"):
            graded[name] = SimpleNamespace(max_score=float(meta.get("points", 0)))
        if meta.get("task"):
            tasks[name] = SimpleNamespace(max_score=float(meta.get("points", 0)))
        if meta.get("solution"):
            solutions.add(name)
    return sources, graded, solutions, tasks


def restore_cells(nb: NotebookNode, source: NotebookNode, report: Report) -> NotebookNode:
    """The submission with nbgrader's repairs: locked cells from the source, missing graded cells back."""
    sources, graded, solutions, tasks = _source_cells(source)
    seen = preprocessors.repair_cells(nb, report, sources, graded, solutions, tasks)
    for cell in nb.cells:
        name = cell.metadata.get("nbgrader", {}).get("grade_id")
        if name in sources and sources[name].locked:
            original = next(c for c in source.cells if c.metadata.get("nbgrader", {}).get("grade_id") == name)
            cell.cell_type, cell.source = original.cell_type, original.source
    order = [c.metadata.get("nbgrader", {}).get("grade_id") for c in source.cells]
    for index, name in enumerate(order):
        if name in graded and name not in seen:  # put it back after the cell that precedes it
            before = {n for n in order[:index] if n}
            position = max((i + 1 for i, c in enumerate(nb.cells)
                            if c.metadata.get("nbgrader", {}).get("grade_id") in before), default=0)
            nb.cells.insert(position, copy.deepcopy(source.cells[index]))
            seen.add(name)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        else:
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
    return nb


@dataclass
class RunResult:
    """A submission after its run in the sandbox, before it is judged (`run_submission`)."""

    notebook: NotebookNode  # repaired and executed; test cells hold what the student's code printed
    events: list  # what the sandboxed run caught (kernel died, output dropped, ...), as report flags
    report: Report


def run_submission(submission: bytes | str | NotebookNode, source: Path | NotebookNode, *,
                   assignment: str = "", student: str = "submission", config=None,
                   workdir: Path | None = None, kernels: KernelPool | None = None) -> RunResult:
    """The first half of `grade_submission`: repair the submission and run it in the sandbox.

    With ``kernels``, it runs in a kernel that pool started ahead, with the assignment's imports done.
    """
    if isinstance(submission, (bytes, str)):
        text = submission.decode("utf-8") if isinstance(submission, bytes) else submission
        nb = nbformat.reads(text, as_version=4)
    else:
        nb = copy.deepcopy(submission)
    source_nb = nbformat.read(str(source), as_version=4) if isinstance(source, (str, Path)) else source
    settings = Sandbox(config=config) if config is not None else Sandbox()
    sandbox.check_sandbox(settings.spec())
    notebook_name = Path(source).stem if isinstance(source, (str, Path)) else assignment
    report = Report(assignment=assignment, student=student, notebook=notebook_name)
    if not settings.enabled:
        report.sandbox = "none"
        report.flag("unsandboxed", "graded with the sandbox switched off")
    start = time.perf_counter()
    nb = restore_cells(nb, source_nb, report)
    report.time({"nbgrader": time.perf_counter() - start})
    preload = preload_modules(source_nb, settings.preload) if kernels is not None else ()
    executed, resources = preprocessors.run_sandboxed(nb, config, workdir, kernels, preload)
    report.time(resources.get("grading", {}).get("timings", {}))
    return RunResult(executed, list(resources.get("grading", {}).get("events", [])), report)


def judge_run(run: RunResult, reference: dict) -> GradeResult:
    """The second half of `grade_submission`: judge a run against the solution's records."""
    start = time.perf_counter()
    preprocessors.judge_notebook(run.notebook, reference, run.report, run.events)
    run.report.time({"judging": time.perf_counter() - start})
    scores: dict[str, tuple[float | None, float]] = {}
    for cell in run.notebook.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            name, points = meta["grade_id"], float(meta.get("points", 0))
            scores[name] = (run.report.tests[name]["score"], points) if name in run.report.tests else (None, points)
    return GradeResult(run.notebook, scores, run.report)


def grade_submission(submission: bytes | str | NotebookNode, source: Path | NotebookNode, *,
                     assignment: str = "", student: str = "submission", config=None,
                     workdir: Path | None = None, reference: dict | None = None) -> GradeResult:
    """Grade one submitted notebook against its source notebook (solutions and hidden tests).

    ``submission`` is the notebook's bytes or JSON text, or a notebook; ``config`` a traitlets Config
    whose ``Sandbox`` and ``ExecutePreprocessor`` sections apply; ``workdir`` the folder the notebook
    runs in (its files other than notebooks are visible to it), an empty temporary one by default;
    ``reference`` the solution's records (`grading.preprocessors.reference_for`), run here if omitted.
    Raises `grading.sandbox.SandboxUnavailableError` where the sandbox cannot start. It is
    `run_submission` then `judge_run`, which a batch runs as separate tasks.
    """
    run = run_submission(submission, source, assignment=assignment, student=student, config=config,
                         workdir=workdir)
    if reference is None:
        reference = preprocessors.reference_for(source, config)  # takes the notebook or its path
    return judge_run(run, reference)
