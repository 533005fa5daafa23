"""Grade every submission of an assignment at once, on long-lived workers: ``python -m grading autograde``.

nbgrader's ``autograde`` grades one submission after another and starts nbgrader, Python and a reference
run for every command. Here a coordinator (the command, run in the course folder) hands each submission
to a worker of a `dask.distributed` cluster: a `LocalCluster` of one process per core by default, or any
running cluster given its scheduler's address. Workers are long-lived: each imports nbgrader once and
grades submission after submission in the sandbox (`grading.api.run_submission`, then `judge_run`).

- **Tasks carry plain data.** A task takes a submission's notebooks (bytes) and returns the graded
  notebooks, scores and reports (`run_task`, then `judge_task`); the solution's records travel the
  same way, from one `reference_task` per assignment. Workers need neither the course folder nor the
  gradebook: the coordinator alone reads ``submitted/`` and writes the gradebook (through nbgrader's
  `Gradebook` API, as ``autograde`` does), ``autograded/`` and ``reports/``, so formgrader,
  ``generate_feedback`` and ``export`` work as after ``nbgrader autograde``. The database URL never
  leaves the coordinator.
- **Exactly once.** Each result is written once, keyed by (assignment, student): Dask re-runs a task
  whose worker died, and only the first result for a key is written; each write is an update-or-create
  of that key's rows, so a rerun of the command replaces grades and never adds any.
- **Idempotent.** A submission is skipped when ``autograded/`` already holds it and ``submitted/``
  holds nothing newer (nbgrader's rule), unless ``--force``.
- **One failure never stops the batch.** A submission whose grading raises is reported and counted; the
  others are graded. Only a sandbox that cannot start, or a solution that fails its own tests, stops
  its batch (or its assignment), with the reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import glob
import hashlib
import importlib
import logging
import os
import resource
import shutil
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from traitlets.config import Config

log = logging.getLogger("grading.batch")

#: nbgrader's autograde steps that write the gradebook: the coordinator does their work, never a worker.
GRADEBOOK_STEPS = ("SaveAutoGrades", "AssignLatePenalties")


class SandboxFailed(RuntimeError):
    """A worker's sandbox cannot start (`grading.sandbox.SandboxUnavailableError`): the batch stops."""


class BatchError(RuntimeError):
    """The batch cannot start: no such assignment in the gradebook, no course folder, no cluster."""


# --- what travels to the workers ----------------------------------------------------------------------


def _plain(value):
    if isinstance(value, (bool, int, float, str, type(None))):
        return True
    return isinstance(value, (list, tuple)) and all(isinstance(v, (bool, int, float, str)) for v in value)


def worker_settings(config: Config) -> dict:
    """The part of the course's configuration a worker needs, as plain values.

    The sandbox's settings, the execution's (timeouts, output budgets) and those of the autograde steps
    that run after the trusted check and need no gradebook (``LimitOutputSize`` and the like), with
    the steps as import paths. Never the gradebook's URL or anything else of ``CourseDirectory``.
    """
    from nbgrader.converters import Autograde
    from nbgrader.preprocessors import Execute

    from grading.preprocessors import CheckResults, SandboxedExecute

    configured = config.get("Autograde", {}).get("autograde_preprocessors")
    steps = configured or Autograde.class_traits()["autograde_preprocessors"].default()
    after = [s for s in steps if not issubclass(s, (Execute, CheckResults)) and s.__name__ not in GRADEBOOK_STEPS]
    sections = {"Sandbox"} | {c.__name__ for s in (SandboxedExecute, *after) for c in s.__mro__}
    return {
        "config": {name: {k: v for k, v in config[name].items() if _plain(v)}
                   for name in sorted(sections) if name in config.keys()},
        "steps": [f"{s.__module__}:{s.__qualname__}" for s in after],
    }


def _import(path: str):
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Job:
    """One student's submission of one assignment: what a grading task carries in."""

    assignment: str
    student: str
    notebooks: dict[str, bytes]  # notebook name -> the submitted file's bytes

    @property
    def key(self) -> tuple[str, str]:
        return self.assignment, self.student


# --- on the workers ----------------------------------------------------------------------------------
# A worker process keeps what it has loaded (nbgrader, parsed source notebooks, the sandbox preflight,
# reference records it had to make itself) for its whole life: these caches are per process.

_sources: dict[str, nbformat.NotebookNode] = {}


def _source(data: bytes) -> nbformat.NotebookNode:
    key = hashlib.sha256(data).hexdigest()
    if key not in _sources:
        _sources[key] = nbformat.reads(data.decode("utf-8"), as_version=4)
    return _sources[key]


def data_key() -> str:
    """Which data this machine's kernels read (`course_utils.data.data_source_key`), once per process."""
    if "key" not in _data:
        from grading import sandbox

        sandbox.prepare_data()
        from course_utils.data import data_source_key

        _data["key"] = data_source_key()
    return _data["key"]


_data: dict[str, str] = {}


def _peak_memory() -> int:
    """Peak resident memory of this worker process, in bytes (its kernels are processes of their own)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def reference_task(sources: dict[str, bytes], settings: dict) -> dict[str, tuple[str, dict]]:
    """Run the solution of each notebook once in the sandbox: notebook -> (data key, its records)."""
    from grading import preprocessors, sandbox

    config = Config(settings["config"])
    try:
        return {name: (data_key(), preprocessors.reference_for(_source(data), config))
                for name, data in sources.items()}
    except sandbox.SandboxUnavailableError as error:  # a SystemExit: make it an ordinary task error
        raise SandboxFailed(str(error)) from None


_pools: dict[str, object] = {}


def _kernel_pool(settings: dict):
    """This worker's `grading.kernel.KernelPool`: its next kernel starts while a submission runs."""
    from grading.kernel import KernelPool

    key = repr(settings["config"])
    if key not in _pools:
        _pools[key] = KernelPool(Config(settings["config"]))
    return _pools[key]


def close_kernel_pools() -> None:
    """Stop the kernels this worker started ahead: the batch is over (a long-lived worker of a shared
    cluster would otherwise keep them until their wall clock ends)."""
    while _pools:
        _pools.popitem()[1].close()


def run_task(job: Job, sources: dict[str, bytes], settings: dict) -> dict:
    """Run one submission's notebooks in the sandbox: the first half of grading it.

    It needs no reference, so it starts at once, while the solution may still be running elsewhere.
    Each notebook runs in a kernel this worker started ahead of it (`_kernel_pool`), used for it alone.
    """
    from nbgrader.utils import setenv

    from grading import sandbox
    from grading.api import run_submission

    start = time.perf_counter()
    config = Config(settings["config"])
    runs = {}
    try:
        for name, data in job.notebooks.items():
            with setenv(NBGRADER_EXECUTION="autograde"):  # as nbgrader autograde runs notebooks
                runs[name] = run_submission(data, _source(sources[name]), assignment=job.assignment,
                                            student=job.student, config=config, kernels=_kernel_pool(settings))
    except sandbox.SandboxUnavailableError as error:
        raise SandboxFailed(str(error)) from None
    return {"runs": runs, "data": data_key(), "worker": _worker_name(), "seconds": time.perf_counter() - start,
            "memory": _peak_memory()}


def judge_task(job: Job, sources: dict[str, bytes], run: dict, references: dict[str, tuple[str, dict]],
               settings: dict) -> dict:
    """Judge a `run_task`'s notebooks against the solution's records; return plain results to write.

    A pure function of its arguments: the submission, the source notebooks, its run, the solution's
    records and the `worker_settings`. Records made on other data than the run's are not used: the
    solution then runs here, once per process, where this machine has the run's data.
    """
    from grading import preprocessors, sandbox
    from grading.api import judge_run

    start = time.perf_counter()
    config = Config(settings["config"])
    steps = [_import(path)(config=config) for path in settings["steps"]]
    graded = {}
    for name, notebook_run in run["runs"].items():
        source = _source(sources[name])
        key, reference = references.get(name, (None, None))
        if key != run["data"]:
            if data_key() != run["data"]:
                raise BatchError(f"{name}: the solution's records were made on other data ({key}) than the "
                                 f"submission's run ({run['data']}), and this worker has other data again")
            try:
                reference = preprocessors.reference_for(source, config)
            except sandbox.SandboxUnavailableError as error:
                raise SandboxFailed(str(error)) from None
        result = judge_run(notebook_run, reference)
        nb = result.notebook
        if "kernelspec" in source.metadata:  # nbgrader's OverwriteKernelspec
            nb.metadata["kernelspec"] = source.metadata["kernelspec"]
        resources = {"nbgrader": {"assignment": job.assignment, "student": job.student, "notebook": name}}
        steps_start = time.perf_counter()
        for step in steps:
            nb, resources = step(nb, resources)
        result.report.time({"nbgrader": time.perf_counter() - steps_start})
        result.report.notebook = name
        graded[name] = {"notebook": nbformat.writes(nb), "scores": result.scores,
                        "report": dataclasses.asdict(result.report)}
    return {"assignment": job.assignment, "student": job.student, "notebooks": graded,
            "worker": run["worker"], "seconds": run["seconds"] + time.perf_counter() - start,
            "memory": max(run["memory"], _peak_memory())}


# --- on the coordinator: what to grade ------------------------------------------------------------------


@dataclass
class Course:
    """The course folder as nbgrader lays it out, read with its ``nbgrader_config.py``."""

    root: Path
    config: Config

    @classmethod
    def load(cls, root: Path | str = ".", overrides: Config | None = None) -> Course:
        from traitlets.config.loader import PyFileConfigLoader

        root = Path(root).resolve()
        if not (root / "nbgrader_config.py").is_file():
            raise BatchError(f"{root} has no nbgrader_config.py: run the command in the course folder")
        config = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
        if overrides:
            config.merge(overrides)
        return cls(root, config)

    @functools.cached_property
    def coursedir(self):  # made once: every path of the batch is formatted by it
        from nbgrader.coursedir import CourseDirectory

        return CourseDirectory(config=self.config, root=str(self.root))

    @property
    def db_url(self) -> str:
        return self.coursedir.db_url

    @property
    def course_id(self) -> str:
        return self.coursedir.course_id

    def folder(self, kind: str, student: str, assignment: str) -> Path:
        coursedir = self.coursedir
        return Path(coursedir.format_path(getattr(coursedir, f"{kind}_directory"), student, assignment))

    def source_notebooks(self, assignment: str) -> dict[str, bytes]:
        folder = self.folder("source", ".", assignment)
        return {p.stem: p.read_bytes() for p in sorted(folder.glob("*.ipynb"))}

    def submissions(self, assignment: str = "*", student: str = "*") -> list[tuple[str, str]]:
        """(assignment, student) of every submission in ``submitted/`` matching the patterns, sorted."""
        folders = glob.glob(str(self.folder("submitted", student, assignment)))
        return sorted((Path(f).name, Path(f).parent.name) for f in folders
                      if Path(f).is_dir() and not Path(f).name.startswith("."))

    def is_graded(self, assignment: str, student: str, notebooks) -> bool:
        """nbgrader's rule: every notebook is in autograded/, and submitted/ holds no newer timestamp."""
        graded = self.folder("autograded", student, assignment)
        if not all((graded / f"{name}.ipynb").is_file() for name in notebooks):
            return False
        coursedir = self.coursedir
        new = coursedir.get_existing_timestamp(str(self.folder("submitted", student, assignment)))
        old = coursedir.get_existing_timestamp(str(graded))
        return not (new is not None and old is not None and new > old)

    def job(self, assignment: str, student: str, notebooks) -> Job:
        folder = self.folder("submitted", student, assignment)
        return Job(assignment, student, {name: (folder / f"{name}.ipynb").read_bytes()
                                         for name in notebooks if (folder / f"{name}.ipynb").is_file()})


# --- on the coordinator: writing results ----------------------------------------------------------------


class GradebookWriter:
    """Writes graded submissions where nbgrader autograde would: the gradebook, autograded/, reports/.

    Holds one gradebook connection for the whole batch, and writes each (assignment, student) once.
    """

    def __init__(self, course: Course):
        from nbgrader.api import Gradebook
        from nbgrader.preprocessors import AssignLatePenalties

        self.course = course
        self.gradebook = Gradebook(course.db_url, course.course_id)
        self.late = AssignLatePenalties(config=course.config)
        self.late.init_plugin()
        self.written: Counter = Counter()

    def close(self) -> None:
        self.gradebook.close()

    def check_assignment(self, assignment: str, notebooks) -> None:
        from nbgrader.api import MissingEntry

        try:
            known = {nb.name for nb in self.gradebook.find_assignment(assignment).notebooks}
        except MissingEntry:
            raise BatchError(f"{assignment} is not in the gradebook: run "
                             f"`nbgrader generate_assignment {assignment}` first") from None
        if not set(notebooks) <= known:
            raise BatchError(f"{assignment}: notebooks {sorted(set(notebooks) - known)} are not in the "
                             "gradebook: run `nbgrader generate_assignment` again")

    def write(self, results: list[dict]) -> list[dict]:
        """Record graded submissions; return those written (a key written already is not written again).

        Their gradebook rows go in one transaction, then their files: autograded/ never holds a
        submission that the gradebook lacks (the next run would skip it as graded).
        """
        fresh, keys = [], set()
        for result in results:
            key = result["assignment"], result["student"]
            if self.written[key] or key in keys:
                log.warning("%s/%s was graded twice; the second result is ignored", key[1], key[0])
                continue
            fresh.append(result)
            keys.add(key)
        if not fresh:
            return []
        start = time.perf_counter()
        with _one_transaction(self.gradebook.db):
            for result in fresh:
                self._write_gradebook(result)
        seconds = (time.perf_counter() - start) / len(fresh)
        for result in fresh:
            self._write_files(result, gradebook_seconds=seconds)
            self.written[result["assignment"], result["student"]] += 1
        return fresh

    def _write_gradebook(self, result: dict) -> None:
        from nbgrader import utils

        gb, assignment, student = self.gradebook, result["assignment"], result["student"]
        gb.update_or_create_student(student)
        folder = self.course.folder("submitted", student, assignment)
        timestamp = self.course.coursedir.get_existing_timestamp(str(folder))
        submission = gb.update_or_create_submission(assignment, student,
                                                    **({"timestamp": timestamp} if timestamp else {}))
        for notebook in gb.find_assignment(assignment).notebooks:
            graded = result["notebooks"].get(notebook.name)
            # the workers' own output, written by nbformat: read without validating it again
            cells = nbformat.v4.reads(graded["notebook"]).cells if graded else []
            by_id = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in cells}
            submitted = gb.find_submission_notebook(notebook.name, assignment, student)
            for grade in submitted.grades:
                cell = by_id.get(grade.name)
                if cell is None:  # no submitted notebook (nbgrader gives zero) or no such cell
                    grade.auto_score, grade.needs_manual_grade = 0, False
                    continue
                # nbgrader's SaveAutoGrades: the verdicts in the test cells' outputs decide
                grade.auto_score, _ = utils.determine_grade(cell, log)
                grade.needs_manual_grade = grade.manual_score is not None or grade.auto_score is None
            for comment in submitted.comments:
                cell = by_id.get(comment.name)
                if cell is not None:
                    unchanged = cell.metadata.nbgrader.get("checksum") == utils.compute_checksum(cell)
                    comment.auto_comment = "No response." if unchanged and not utils.is_task(cell) else None
            self._late_penalty(submission, submitted)

    def _late_penalty(self, submission, notebook) -> None:
        # nbgrader's AssignLatePenalties, with its configured plugin
        notebook.late_submission_penalty = None
        if submission.total_seconds_late > 0:
            penalty = self.late.plugin_inst.late_submission_penalty(
                submission.student.id, notebook.score, submission.total_seconds_late)
            if penalty is not None:
                notebook.late_submission_penalty = self.late._check_late_penalty(notebook, penalty)

    def _write_files(self, result: dict, gradebook_seconds: float) -> None:
        from grading.report import Report

        course, assignment, student = self.course, result["assignment"], result["student"]
        dest = course.folder("autograded", student, assignment)
        staging = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}")
        staging.mkdir(parents=True)
        # as nbgrader: the submission's other files (timestamp.txt), then the source's, then notebooks
        for folder in (course.folder("submitted", student, assignment), course.folder("source", ".", assignment)):
            for path in sorted(folder.rglob("*")):
                if path.is_file() and path.suffix != ".ipynb" and ".ipynb_checkpoints" not in path.parts:
                    target = staging / path.relative_to(folder)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, target)
        for name, graded in result["notebooks"].items():
            (staging / f"{name}.ipynb").write_text(graded["notebook"], encoding="utf-8")
            report = Report(**graded["report"])
            report.time({"gradebook": gradebook_seconds / len(result["notebooks"])})
            report.save(course.root)
            if report.flags:
                log.warning("Grading report: %s", report.summary())
        permissions = int(str(self.course.coursedir.groupshared and 664 or 444), 8)
        for path in staging.rglob("*"):
            if path.is_file():
                path.chmod(permissions)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staging, dest)


@contextlib.contextmanager
def _one_transaction(db):
    """nbgrader's `Gradebook` commits after each change it makes; inside this block its commits only
    flush (so its checks still see every row), and the block commits once at its end, or rolls all back."""
    db.commit = db.flush  # an attribute of this session object, shadowing the method until the end
    try:
        yield
    except BaseException:
        del db.commit
        db.rollback()
        raise
    del db.commit
    db.commit()


# --- on the coordinator: the batch ----------------------------------------------------------------------


@dataclass
class Outcome:
    assignment: str
    student: str
    status: str  # "graded", "skipped" or "failed"
    score: float | None = None
    max_score: float | None = None
    flags: list[str] = field(default_factory=list)
    error: str | None = None
    worker: str | None = None
    seconds: float | None = None
    memory: int | None = None  # the worker process's peak resident memory, in bytes


@dataclass
class BatchResult:
    outcomes: list[Outcome]
    seconds: float
    stopped: str | None = None  # why the batch stopped early (the sandbox cannot start)

    def count(self, status: str, assignment: str | None = None) -> int:
        return sum(o.status == status and assignment in (None, o.assignment) for o in self.outcomes)

    @property
    def ok(self) -> bool:
        return self.stopped is None and not self.count("failed")

    def table(self) -> str:
        """The summary: one row per assignment, then every failure and every flagged submission."""
        assignments = sorted({o.assignment for o in self.outcomes})
        rows = [("assignment", "submissions", "graded", "skipped", "failed", "flagged", "mean score")]
        for name in assignments:
            graded = [o for o in self.outcomes if o.assignment == name and o.status == "graded"]
            mean = (f"{sum(o.score for o in graded) / len(graded):.2f} / {graded[0].max_score:g}"
                    if graded else "-")
            rows.append((name, str(sum(o.assignment == name for o in self.outcomes)),
                         *(str(self.count(s, name)) for s in ("graded", "skipped", "failed")),
                         str(sum(bool(o.flags) for o in graded)), mean))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                 for r in rows]
        graded = [o for o in self.outcomes if o.status == "graded"]
        if graded:
            memory = max(o.memory for o in graded) / 2**20
            lines.append(f"graded {len(graded)} in {self.seconds:.1f} s on {len({o.worker for o in graded})} "
                         f"workers; peak memory of a worker process {memory:.0f} MiB (kernels not included)")
        for o in self.outcomes:
            if o.status == "failed":
                lines.append(f"FAILED {o.student}/{o.assignment}: {o.error}")
        for o in graded:
            if o.flags:
                lines.append(f"flagged {o.student}/{o.assignment}: {', '.join(o.flags)}")
        if self.stopped:
            lines.append(f"STOPPED: {self.stopped}")
        return "\n".join(lines)


def _outcome(result: dict) -> Outcome:
    scores = [s for nb in result["notebooks"].values() for s in nb["scores"].values()]
    flags = sorted({f for nb in result["notebooks"].values() for f in nb["report"]["flags"]})
    return Outcome(result["assignment"], result["student"], "graded", score=sum(s or 0.0 for s, _ in scores),
                   max_score=sum(m for _, m in scores), flags=flags, worker=result["worker"],
                   seconds=result["seconds"], memory=result["memory"])


def _client(scheduler: str | None, workers: int | None):
    """A client of the cluster at ``scheduler``, or of a new LocalCluster of ``workers`` processes."""
    from distributed import Client, LocalCluster

    # the scheduler of a LocalCluster lives in this process: its routine lines are not the instructor's
    logging.getLogger("distributed").setLevel(logging.WARNING if scheduler else logging.ERROR)
    if scheduler:
        return Client(scheduler, timeout="30s"), None
    cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.ERROR)
    return Client(cluster), cluster


def grade_batch(course: Course, assignment: str = "*", student: str = "*", *, force: bool = False,
                workers: int | None = None, scheduler: str | None = None, progress: bool = True,
                on_write=None) -> BatchResult:
    """Grade every matching submission; write each result once; return what happened to each.

    ``scheduler`` is a running cluster's address; without it a LocalCluster of ``workers`` processes
    (default: one per core) runs for this batch. ``on_write(result, client)`` is called after each
    result is written (the tests use it to kill a worker mid-batch).
    """
    start = time.perf_counter()
    outcomes: dict[tuple[str, str], Outcome] = {}
    writer = GradebookWriter(course)
    try:
        jobs, sources = [], {}
        for name, who in course.submissions(assignment, student):
            if name not in sources:
                sources[name] = course.source_notebooks(name)
                try:
                    writer.check_assignment(name, sources[name])
                except BatchError as error:
                    sources[name] = error
            if isinstance(sources[name], BatchError):
                outcomes[name, who] = Outcome(name, who, "failed", error=str(sources[name]))
            elif not force and course.is_graded(name, who, sources[name]):
                outcomes[name, who] = Outcome(name, who, "skipped")
            else:
                jobs.append(course.job(name, who, sources[name]))
        stopped = None
        if jobs:
            stopped = _run(jobs, sources, worker_settings(course.config), writer, outcomes, scheduler, workers,
                           progress, on_write)
    finally:
        writer.close()
    ordered = [outcomes[k] for k in sorted(outcomes)]
    return BatchResult(ordered, time.perf_counter() - start, stopped)


#: How many more times a run that raised is tried (a submission that cannot be graded fails each time).
RETRIES = 1


def _run(jobs, sources, settings, writer, outcomes, scheduler, workers, progress, on_write) -> str | None:
    from distributed import as_completed
    from tqdm import tqdm

    client, cluster = _client(scheduler, workers)
    batch = uuid.uuid4().hex[:8]  # task keys unique to this batch: a shared cluster may run others
    stopped = None
    try:
        # A run raises only where the grader itself failed (a student's errors, and a kernel that the
        # student's code kills, are in the graded notebook): typically a kernel that died at start-up
        # because its worker was being stopped. Such a task runs once more, on any worker.
        references = {name: client.submit(reference_task, sources[name], settings, pure=False, retries=RETRIES,
                                          key=f"reference-{name}-{batch}")
                      for name in sorted({job.assignment for job in jobs})}
        # Each submission in two tasks: its run needs no reference, so no worker waits for the
        # solution's run; the judging (a fraction of a second) waits for both, and goes first once ready.
        runs = [client.submit(run_task, job, sources[job.assignment], settings, pure=False, retries=RETRIES,
                              key=f"run-{job.assignment}-{job.student}-{batch}") for job in jobs]
        futures = {client.submit(judge_task, job, sources[job.assignment], run, references[job.assignment],
                                 settings, pure=False, priority=1,
                                 key=f"grade-{job.assignment}-{job.student}-{batch}"): job
                   for job, run in zip(jobs, runs)}
        bar = tqdm(total=len(futures), unit="submission", desc="grading", disable=not progress or None,
                   file=sys.stderr)
        # Whatever has finished since the last write is written together: one gradebook transaction.
        for finished in as_completed(futures).batches():
            results = []
            for future in finished:
                job = futures[future]
                bar.update()
                try:
                    results.append(future.result())
                except SandboxFailed as error:
                    stopped = str(error)
                    break
                except Exception as error:  # noqa: BLE001 (one submission's failure is reported, never fatal)
                    outcomes[job.key] = Outcome(job.assignment, job.student, "failed",
                                                error=f"{type(error).__name__}: {error}")
                    bar.write(f"FAILED {job.student}/{job.assignment}: {type(error).__name__}: {error}")
            for result in writer.write(results):
                outcomes[result["assignment"], result["student"]] = _outcome(result)
                if on_write is not None:
                    on_write(result, client)
            if stopped:
                client.cancel([*futures, *runs, *references.values()])
                break
        bar.close()
        if stopped:
            for job in futures.values():
                outcomes.setdefault(job.key, Outcome(job.assignment, job.student, "failed", error="batch stopped"))
    finally:
        try:
            client.run(close_kernel_pools, on_error="ignore")  # a worker that died has nothing left to stop
        except Exception as error:  # noqa: BLE001 (a cluster that is gone took its kernels with it)
            log.warning("could not stop the kernels started ahead: %s", error)
        client.close()
        if cluster is not None:
            cluster.close()
    return stopped
