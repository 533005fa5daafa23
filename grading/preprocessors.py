"""nbgrader preprocessors that put the sandbox and the trusted checks into nbgrader's own commands.

``nbgrader_config.py`` inserts them:

- `InspectSubmission`, first of autograde's *sanitize* steps: checks that the sandbox starts (and stops
  the run with `grading.sandbox.SandboxUnavailableError` otherwise), then repairs what would break
  nbgrader or mislead it and reports it: duplicated cells (which make nbgrader 0.9 abort the whole
  batch, jupyter/nbgrader#1083), unknown or edited nbgrader metadata, edited and deleted test cells;
- `SandboxedExecute` replaces nbgrader's ``Execute``: kernels run in the sandbox; a kernel that dies,
  hangs or runs out of time costs the cells from there on, never the batch; output beyond a budget is
  dropped as it arrives; outputs of earlier cells cannot be rewritten (display updates) and widget
  state is not kept;
- `CheckResults`, right after it: judges every test cell from its records against the solution's
  (`grading.checks`), replaces the test cell's outputs with its verdict, and writes the report;
- `LimitOutputSize` replaces nbgrader's ``LimitOutput``: it also cuts a single huge line and drops
  huge images;
- `HideHiddenTests`, in ``generate_feedback``: removes hidden tests from test cells and any line of
  them from any output, so feedback never shows them (jupyter/nbgrader#917).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import copy
import datetime
import hashlib
import os
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import nbformat
import psutil
from jupyter_core.utils import ensure_async, run_sync
from nbgrader.api import Gradebook
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import ClearHiddenTests, Execute, LimitOutput, NbGraderPreprocessor
from nbformat.notebooknode import NotebookNode
from traitlets import Float, Integer

from grading import checks, sandbox, scan
from grading.kernel import UNSANDBOXED_WARNING, KernelPool, Sandbox, SandboxedKernelManager
from grading.report import Report


def _course_root(config) -> Path:
    return Path(CourseDirectory(config=config).root)


def _error(ename: str, text: str) -> NotebookNode:
    return NotebookNode(output_type="error", ename=ename, evalue=text, traceback=[f"{ename}: {text}"])


# --- sanitize ------------------------------------------------------------------------------------------


def _canonical_metadata(source_cell, graded: dict, solutions: set, tasks: dict) -> dict:
    name = source_cell.name
    meta = {"grade": name in graded, "grade_id": name, "locked": bool(source_cell.locked),
            "schema_version": 3, "solution": name in solutions, "task": name in tasks,
            "checksum": source_cell.checksum}
    if name in graded or name in tasks:
        meta["points"] = float((graded.get(name) or tasks.get(name)).max_score)
    return meta


class InspectSubmission(NbGraderPreprocessor):
    """Sanitize step: the sandbox preflight, then repair and report tampering with the notebook's cells."""

    def preprocess(self, nb, resources):
        start = time.perf_counter()
        sandbox_config = Sandbox(config=self.config)
        sandbox.check_sandbox(sandbox_config.spec())
        info = resources["nbgrader"]
        report = Report(assignment=info["assignment"], student=info["student"], notebook=info["notebook"])
        if not sandbox_config.enabled:
            self.log.warning("\n%s", UNSANDBOXED_WARNING)
            report.sandbox = "none"
            report.flag("unsandboxed", "graded with --Sandbox.enabled=False")
        with Gradebook(info["db_url"]) as gb:
            source_nb = gb.find_notebook(info["notebook"], info["assignment"])
            sources = {c.name: c for c in source_nb.source_cells}
            graded = {c.name: c for c in source_nb.grade_cells}
            solutions = {c.name for c in source_nb.solution_cells}
            tasks = {c.name: c for c in source_nb.task_cells}
            repair_cells(nb, report, sources, graded, solutions, tasks)
        report.time({"nbgrader": time.perf_counter() - start})
        report.save(_course_root(self.config))
        return nb, resources


def repair_cells(nb, report: Report, sources: dict, graded: dict, solutions: set, tasks: dict) -> set[str]:
    """Make a submission's cells safe for nbgrader, and flag what was wrong; return the graded ids seen.

    ``sources`` maps each locked, graded or answer cell's id to its source cell (``name``,
    ``cell_type``, ``locked``, ``source``, ``checksum``); ``graded`` and ``tasks`` map ids to cells with
    ``max_score``. Duplicates lose their nbgrader metadata (the last copy stays), unknown graded cells
    become plain cells, and every known cell gets its metadata from the source.
    """
    ids = set()
    for cell in nb.cells:  # nbformat 4.5 cell ids must be unique too
        if cell.get("id") in ids:
            cell["id"] = uuid.uuid4().hex[:8]
        ids.add(cell.get("id"))
    seen = set()
    for cell in reversed(nb.cells):  # like nbgrader, the last copy of a graded cell is the one graded
        meta = cell.get("metadata", {}).get("nbgrader")
        if meta is None:
            continue
        name = meta.get("grade_id") if isinstance(meta, dict) else None
        if name not in sources:
            del cell.metadata["nbgrader"]
            report.flag("metadata_changed", f"nbgrader metadata of an unknown cell {name!r} removed")
            continue
        if name in seen:
            del cell.metadata["nbgrader"]
            report.flag("cells_duplicated", f"{name} appears more than once; the earlier copies run ungraded")
            continue
        seen.add(name)
        source = sources[name]
        canonical = _canonical_metadata(source, graded, solutions, tasks)
        changed = [k for k in ("grade", "solution", "locked", "task", "points")
                   if k in canonical and meta.get(k) != canonical[k]
                   and not (k == "points" and _same_number(meta.get(k), canonical[k]))]
        if cell.cell_type != source.cell_type:
            changed.append("cell type")
        if changed:
            report.flag("metadata_changed", f"{name}: {', '.join(changed)}")
        cell.metadata["nbgrader"] = canonical
        if source.locked and cell.source.strip() != checks.visible_part(source.source).strip() \
                and cell.source.strip() != source.source.strip():
            report.flag("test_cells_edited", name)
    for name, source in sources.items():
        if name not in seen and (source.locked or name in graded):
            report.flag("test_cells_deleted", name)
    return seen


def _same_number(a, b) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


# --- execute -------------------------------------------------------------------------------------------


class SandboxedExecute(Execute):
    """nbgrader's Execute, with kernels in the sandbox and failures contained to the submission."""

    # A course notebook prints far less (a figure is about 100 kB): a flood is dropped before the grader
    # spends its time (and a cell its time limit) decoding it.
    cell_output_budget = Integer(8_000_000, help="Characters of output kept from one cell; the rest is "
                                                 "dropped as it arrives.").tag(config=True)
    output_budget = Integer(16_000_000, help="Characters of output kept from one notebook.").tag(config=True)
    record_budget = Integer(32_000_000, help="Characters of records (results for the trusted check) kept "
                                             "from one notebook.").tag(config=True)

    # What stops a cell is the CPU time its kernel uses, which a busy machine does not change: `timeout`
    # seconds on each core (a loop on one core runs cores x timeout seconds). The wall-clock limit, for a
    # kernel that sleeps or waits, is wall_factor x timeout: room for a machine several times slower.
    wall_factor = Float(8.0, help="A cell's wall-clock limit, in multiples of `timeout` (its CPU-time "
                                  "limit per core).").tag(config=True)
    interrupt_grace = Float(5.0, help="Seconds a cell stopped for its CPU time has to honour the interrupt "
                                      "before its kernel is shut down.").tag(config=True)
    startup_timeout = Integer(180, help="Seconds a sandboxed kernel may take to start on a busy machine."
                              ).tag(config=True)
    start_attempts = Integer(3, help="Kernels started for one notebook when a start fails before any cell "
                                     "ran (the grader's failure, not the submission's).").tag(config=True)

    def __init__(self, kernels: KernelPool | None = None, preload: tuple[str, ...] = (), **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxedKernelManager)
        kwargs.setdefault("store_widget_state", False)
        # the kernel ran someone's code and is never used again: killed, not asked to shut down
        kwargs.setdefault("shutdown_kernel", "immediate")
        super().__init__(**kwargs)
        # where the kernel comes from: started ahead by a pool, having imported ``preload``, or here
        self.kernels, self.preload = kernels, preload

    def create_kernel_manager(self):
        if self.kernels is None:
            return super().create_kernel_manager()
        self.km = self.kernels.take(self.preload)
        return self.km

    def preprocess(self, nb, resources=None, km=None):
        original = copy.deepcopy(nb)
        self.timings: Counter = Counter()  # phase -> seconds (`grading.report.PHASES`), failed starts included
        for attempt in range(1, max(1, self.start_attempts) + 1):
            self._stopped: str | None = None
            self._cpu_stopped: int | None = None
            self._budget = {"notebook": self.output_budget, "records": self.record_budget}
            self._current = -1
            self._dropped: set[int] = set()
            self.events: list[tuple[str, str]] = []  # (flag, detail) for the report
            try:
                nb, resources = super().preprocess(nb, resources, km)
                break
            except Exception as error:  # noqa: BLE001 (retried only if no cell ran: a failed start)
                if self._current >= 0 or attempt >= self.start_attempts or km is not None:
                    raise
                self.log.warning("The kernel did not start (%s: %s); starting another (try %d of %d)",
                                 type(error).__name__, error, attempt + 1, self.start_attempts)
                nb = copy.deepcopy(original)
        if resources is not None:
            resources.setdefault("grading", {}).update(events=self.events, timings=dict(self.timings))
        return nb, resources

    # --- where the time goes: the kernel's start and stop, and each cell's time in and out of the kernel

    # (nbclient's synchronous names are bound to its own coroutines: they are bound again to these)

    async def async_start_new_kernel(self, **kwargs):
        with _timed(self.timings, "kernel_start"):
            await super().async_start_new_kernel(**kwargs)

    start_new_kernel = run_sync(async_start_new_kernel)

    async def async_start_new_kernel_client(self):
        with _timed(self.timings, "kernel_start"):  # it waits until the kernel answers
            client = await super().async_start_new_kernel_client()
        if isinstance(self.km, SandboxedKernelManager):
            self.km.start_wall_clock()  # its notebook starts now, however long it waited for it
        return client

    start_new_kernel_client = run_sync(async_start_new_kernel_client)

    async def _async_cleanup_kernel(self):
        with _timed(self.timings, "kernel_stop"):
            await super()._async_cleanup_kernel()

    _cleanup_kernel = run_sync(_async_cleanup_kernel)

    def _time_cell(self, cell, seconds: float) -> None:
        """Split a cell's wall clock into the kernel's own time (busy to idle, by the kernel's clock)
        and the rest, spent waiting on messages."""
        timing = cell.get("metadata", {}).get("execution", {})
        try:
            busy = max(0.0, min(seconds, (_kernel_time(timing["iopub.status.idle"])
                                          - _kernel_time(timing["iopub.status.busy"])).total_seconds()))
        except (KeyError, ValueError):  # not run to the end (a dead kernel): all of it counts as waiting
            busy = 0.0
        self.timings["imports" if _imports(cell.source) else "cells"] += busy
        self.timings["waiting"] += seconds - busy

    def _get_timeout(self, cell):
        timeout = super()._get_timeout(cell)
        return None if timeout is None else timeout * self.wall_factor

    async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
        watcher = None
        if cell.cell_type == "code" and cell.source.strip() and self.timeout and self.timeout > 0:
            watcher = asyncio.ensure_future(self._stop_at_cpu_limit(cell_index))
        start = time.perf_counter()
        try:
            cell = await super().async_execute_cell(cell, cell_index, execution_count, store_history)
        finally:
            if watcher is not None:
                watcher.cancel()
            if cell.cell_type == "code" and cell.source.strip():
                self._time_cell(cell, time.perf_counter() - start)
        if self._cpu_stopped == cell_index:  # the interrupt's KeyboardInterrupt, shown as what it was
            cell.outputs = [o for o in cell.outputs if o.get("output_type") != "error"]
            cell.outputs.append(_error("CellTimeoutError", self._cpu_limit_text()))
        return cell

    execute_cell = run_sync(async_execute_cell)

    def _cpu_limit_text(self) -> str:
        return f"stopped after {self.timeout * _cores():g} seconds of CPU time ({self.timeout:g} per core)"

    async def _stop_at_cpu_limit(self, cell_index: int) -> None:
        """Interrupt the cell once its kernel has used its CPU time; shut a kernel down that ignores it."""
        process = getattr(getattr(self.km, "provisioner", None), "process", None)
        if process is None:
            return
        start, budget = _tree_cpu_seconds(process.pid), self.timeout * _cores()
        while _tree_cpu_seconds(process.pid) - start < budget:
            await asyncio.sleep(0.2)
        self._cpu_stopped = cell_index
        self.events.append(("cell_timeout", f"cell {cell_index + 1}: {self._cpu_limit_text()}"))
        self.log.warning("Interrupting cell %d: %s", cell_index + 1, self._cpu_limit_text())
        await ensure_async(self.km.interrupt_kernel())
        await asyncio.sleep(self.interrupt_grace)
        self.log.warning("Cell %d ignored the interrupt: shutting its kernel down", cell_index + 1)
        await ensure_async(self.km.shutdown_kernel(now=True))

    def preprocess_cell(self, cell, resources, index):
        self._current = index
        self._budget["cell"] = self.cell_output_budget
        if self._stopped:
            if cell.cell_type == "code" and cell.source.strip():
                cell.outputs = [_error("NotRun", f"not run: {self._stopped}")]
            return cell, self.resources
        try:
            return super().preprocess_cell(cell, resources, index)
        except Exception as error:  # noqa: BLE001 (a dead or stuck kernel must not stop the batch)
            self._stop(cell, error)
            return cell, self.resources

    def _stop(self, cell, error) -> None:
        status = self.km.exit_status() if isinstance(self.km, SandboxedKernelManager) else None
        if status == sandbox.WALL_CLOCK_EXIT:
            flag, text = "wall_clock", "the notebook ran longer than its time limit"
        elif self._cpu_stopped == self._current:
            flag, text = "cell_timeout", f"{self._cpu_limit_text()} and ignored the interrupt"
        elif type(error).__name__ == "DeadKernelError":
            flag, text = "kernel_died", f"the kernel died (exit status {status})"
        else:
            flag, text = "cell_timeout", f"the cell could not be stopped after its time limit ({type(error).__name__})"
        self.log.warning("Stopping this notebook's kernel: %s", text)
        self.events.append((flag, f"cell {self._current + 1}: {text}"))
        cell.outputs = list(cell.get("outputs", [])) + [_error(type(error).__name__, text)]
        self._stopped = text
        try:
            if self.km is not None:
                run_sync(self.km.shutdown_kernel)(now=True)
        except Exception:  # noqa: BLE001 (already gone)
            pass

    def output(self, outs, msg, display_id, cell_index):
        # Records have a budget of their own, so that a flood of printing cannot crowd them out.
        content = msg.get("content", {})
        data = content.get("data", {})
        size = len(content.get("text", "")) + sum(len(str(v)) for v in data.values())
        budgets = ["records"] if checks.RECORD_MIME in data else ["cell", "notebook"]
        over = [name for name in budgets if self._budget[name] < size]
        for name in budgets:
            self._budget[name] -= size
        if over:
            if cell_index not in self._dropped:
                self._dropped.add(cell_index)
                self.events.append(("output_dropped", f"cell {cell_index + 1}: output beyond the "
                                                      f"{' and '.join(over)} budget dropped"))
                outs.append(NotebookNode(output_type="stream", name="stdout",
                                         text="\n... Output dropped: this notebook printed too much ...\n"))
            return None
        return super().output(outs, msg, display_id, cell_index)

    async def _async_handle_timeout(self, timeout, cell=None):
        self.events.append(("cell_timeout", f"cell {self._current + 1}: stopped after {timeout} s"))
        return await super()._async_handle_timeout(timeout, cell)

    def _update_display_id(self, display_id, msg):
        # Only the running cell's outputs may change: a later cell (a test, with hidden code running)
        # must not rewrite what an earlier cell showed.
        cells = self._display_id_map.get(display_id, {})
        if set(cells) - {self._current}:
            self._display_id_map[display_id] = {k: v for k, v in cells.items() if k == self._current}
        super()._update_display_id(display_id, msg)

    def handle_comm_msg(self, outs, msg, cell_index):
        return None  # no widgets, no output hooks that route outputs elsewhere


@contextlib.contextmanager
def _timed(timings: Counter, phase: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[phase] += time.perf_counter() - start


def _kernel_time(stamp: str) -> datetime.datetime:
    return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")


def _imports(source: str) -> bool:
    """Whether a cell imports something at its top level (its time is the imports' phase)."""
    try:
        return any(isinstance(node, (ast.Import, ast.ImportFrom)) for node in ast.parse(source).body)
    except SyntaxError:
        return False


def _cores() -> int:
    """The cores this grader (and so the kernels it starts) may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used by a process and everything below it, ended children included."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


# --- the trusted check ---------------------------------------------------------------------------------

_references: dict[str, dict] = {}


def run_sandboxed(nb, config=None, workdir: Path | None = None, kernels: KernelPool | None = None,
                  preload: tuple[str, ...] = ()):
    """Execute a notebook in the sandbox (in an empty temporary folder unless ``workdir``); return it.

    With ``kernels``, in a kernel of that pool that has imported ``preload`` (in an empty folder of its own).
    """
    if kernels is not None and workdir is not None:
        raise ValueError("a pool's kernels start before their notebook, in empty folders: no workdir")
    settings = {"config": config} if config is not None else {}
    with tempfile.TemporaryDirectory(prefix="grading-run-") as folder:
        executor = SandboxedExecute(kernels=kernels, preload=preload, **settings)
        executed, resources = executor.preprocess(nb, {"metadata": {"path": str(workdir or folder)}})
    return executed, resources


def reference_for(source, config=None) -> dict[str, list[checks.Record]]:
    """The solution's records for every test cell, from running it in the sandbox once per process.

    ``source`` is the source notebook or its path.
    """
    data = Path(source).read_bytes() if isinstance(source, (str, Path)) else nbformat.writes(source).encode()
    key = hashlib.sha256(data).hexdigest()
    if key not in _references:
        for attempt in (1, 2):
            nb = nbformat.reads(data.decode("utf-8"), as_version=4)
            executed, resources = run_sandboxed(nb, config)
            stopped = [detail for flag, detail in resources.get("grading", {}).get("events", [])
                       if flag in ("cell_timeout", "kernel_died", "wall_clock")]
            try:
                _references[key] = checks.reference_records(executed)
                break
            except checks.ReferenceError as error:
                if not stopped or attempt == 2:  # a solution that fails its tests fails every time
                    raise checks.ReferenceError(f"{error}{'; ' if stopped else ''}{'; '.join(stopped)}") from None
    return _references[key]


def judge_notebook(nb, reference: dict, report: Report, events=()) -> None:
    """Judge every test cell of an executed submission in place and fill ``report``."""
    for flag, detail in events:
        report.flag(flag, detail)
    for index, cell in enumerate(nb.cells):
        if checks.is_test_cell(cell):
            name = checks.grade_id(cell)
            points = float(cell.metadata.nbgrader.get("points", 0))
            verdict = checks.judge(cell, reference.get(name, []),
                                   checks.test_title(checks.visible_part(cell.source), name))
            if name not in reference:
                verdict.passed, verdict.reasons = False, ["no reference for this test"]
            if not verdict.error and verdict.missing:
                report.flag("records_missing", f"{name}: {len(verdict.missing)} hidden checks did not record")
            if not verdict.error and verdict.wrong and not verdict.missing:
                report.flag("wrong_without_error", name)
            for note in verdict.measured:
                report.flag("measured_differs", note)
            if verdict.unexpected or verdict.invalid:
                report.flag("records_forged", f"{name}: {verdict.unexpected + verdict.invalid} records the tests do not make")
            cell.outputs = [NotebookNode(o) for o in checks.feedback_outputs(verdict, points)]
            report.tests[name] = {**verdict.as_dict(), "points": points, "score": points if verdict.passed else 0.0}
        else:
            records, invalid = checks.read_records(cell)
            if records or invalid:
                report.flag("records_forged", f"cell {index + 1}: {len(records) + invalid} record outputs outside a test cell")
            checks.strip_records(cell)
    report.scan = scan.scan_notebook(nb)
    if report.scan:
        report.flag("static_scan", "; ".join(f"{k}: {', '.join(v)}" for k, v in report.scan.items()))
    for name, uses in scan.scan_course_helpers(nb).items():
        report.flag("course_helper", f"{name}: {', '.join(uses)}")


class CheckResults(NbGraderPreprocessor):
    """Autograde step right after execution: the trusted verdict on every test cell, and the report."""

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        coursedir = CourseDirectory(config=self.config)
        source = Path(coursedir.format_path(coursedir.source_directory, ".", info["assignment"])) / \
            f"{info['notebook']}.ipynb"
        reference = reference_for(source, self.config)
        root = _course_root(self.config)
        report = Report.load(root, info["assignment"], info["student"], info["notebook"])
        start = time.perf_counter()
        judge_notebook(nb, reference, report, resources.get("grading", {}).get("events", []))
        report.time({**resources.get("grading", {}).get("timings", {}), "judging": time.perf_counter() - start})
        report.save(root)
        if report.flags:
            self.log.warning("Grading report: %s", report.summary())
        return nb, resources


class LimitOutputSize(LimitOutput):
    """nbgrader's LimitOutput (1,000 lines per cell), which a single 5 MB line passes, plus a cap on any
    text output's characters and on any other output's size (an image, HTML)."""

    max_chars = Integer(100_000, help="longest text kept from one output").tag(config=True)
    max_bytes = Integer(2_000_000, help="largest image or other rich output kept").tag(config=True)

    def preprocess_cell(self, cell, resources, cell_index):
        cell, resources = super().preprocess_cell(cell, resources, cell_index)
        for output in cell.get("outputs", []):
            if output.output_type == "stream" and len(output.text) > self.max_chars:
                output.text = output.text[: self.max_chars] + "\n... Output truncated ...\n"
            elif output.output_type in ("display_data", "execute_result"):
                size = sum(len(str(value)) for value in output.data.values())
                if size > self.max_bytes:
                    output.data = {"text/plain": f"... Output of {size:,} characters removed ..."}
                else:
                    for mime, value in output.data.items():
                        if mime.startswith("text/") and len(value) > self.max_chars:
                            output.data[mime] = value[: self.max_chars] + "\n... Output truncated ..."
        return cell, resources


# --- feedback ------------------------------------------------------------------------------------------


class HideHiddenTests(ClearHiddenTests):
    """generate_feedback step: hidden tests out of test cells, and any line of them out of any output."""

    def preprocess(self, nb, resources):
        secret = [line for cell in nb.cells if checks.is_test_cell(cell) for line in checks.hidden_lines(cell.source)]
        nb, resources = super().preprocess(nb, resources)
        for cell in nb.cells:
            checks.strip_records(cell)
            for output in cell.get("outputs", []):
                _redact(output, secret)
        return nb, resources


def _redact(output, secret: list[str]) -> None:
    def clean(text):
        if isinstance(text, list):
            return [clean(t) for t in text]
        if not isinstance(text, str):
            return text
        for line in secret:
            if line in text:
                text = text.replace(line, "[hidden test removed]")
        return text

    for key in ("text", "evalue", "traceback"):
        if key in output:
            output[key] = clean(output[key])
    for mime in list(output.get("data", {})):
        output["data"][mime] = clean(output["data"][mime])
