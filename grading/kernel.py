"""A jupyter_client kernel manager whose kernels run in the sandbox, and its configuration.

nbgrader (through `grading.preprocessors.SandboxedExecute`), nbclient, or a long-lived grading worker
use `SandboxedKernelManager` like any kernel manager. Its kernelspec is built here rather than
installed: the command is ``python -m grading.launcher -f {connection_file}``, interrupts travel as
messages (a signal cannot cross into the sandbox's session), and the transport is IPC, since the
kernel has no network. Each kernel gets a private folder for its connection file and sockets, the
only one of the grader's folders that the sandbox can write to, so no kernel can reach another's.

The settings are the `Sandbox` class's, set in ``nbgrader_config.py`` or on the command line
(``--Sandbox.enabled=False`` grades without the sandbox, and says so loudly).

`KernelPool` starts kernels ahead of the submissions that will run in them (a grading worker's next
kernel boots, and does the assignment's imports, while the current submission runs); each is still
started fresh for one submission and never used again.
"""

from __future__ import annotations

import ast
import atexit
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from queue import Empty

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync
from traitlets import Bool, Float, Integer, List, Unicode, default
from traitlets.config import Configurable

from grading import sandbox

UNSANDBOXED_WARNING = (
    "!" * 78 + "\n"
    "!!  GRADING WITHOUT THE SANDBOX (--Sandbox.enabled=False): student code runs with YOUR\n"
    "!!  permissions. It can read the solutions and hidden tests, edit the gradebook, use the\n"
    "!!  network and delete files. Do this only for submissions you trust.\n" + "!" * 78
)


class Sandbox(Configurable):
    """Where and how submissions run: `c.Sandbox.<name>` in nbgrader_config.py."""

    enabled = Bool(True, help="Run kernels in the bubblewrap sandbox. False is unsafe.").tag(config=True)
    memory_mb = Integer(sandbox.Limits.memory_bytes // sandbox.MiB,
                        help="Memory per kernel (cgroup memory.max, else RLIMIT_DATA).").tag(config=True)
    processes = Integer(sandbox.Limits.processes, help="Processes and threads per kernel.").tag(config=True)
    file_size_mb = Integer(sandbox.Limits.file_size_bytes // sandbox.MiB,
                           help="Largest file a kernel may write.").tag(config=True)
    open_files = Integer(sandbox.Limits.open_files, help="Open files per process.").tag(config=True)
    tmp_mb = Integer(sandbox.Limits.tmp_bytes // sandbox.MiB, help="Size of /tmp.").tag(config=True)
    workdir_mb = Integer(sandbox.Limits.workdir_bytes // sandbox.MiB,
                         help="Room for files in the notebook's folder.").tag(config=True)
    wall_clock = Float(sandbox.Limits.wall_clock_s, help="Seconds a kernel may live: one notebook.").tag(config=True)
    use_cgroup = Bool(True, help="Cap memory and processes with cgroups where they can be made.").tag(config=True)
    require_process_limit = Bool(True, help="As root, stop unless a cgroup caps processes (RLIMIT_NPROC "
                                            "does not apply to root).").tag(config=True)
    preload = List(Unicode(), ["numpy", "course_utils", "tensorflow", "keras"],
                   help="Packages a kernel started ahead of its submission imports before it, where the "
                        "assignment's source notebook imports them ([]: none).").tag(config=True)

    def limits(self) -> sandbox.Limits:
        return sandbox.Limits(
            memory_bytes=self.memory_mb * sandbox.MiB, processes=self.processes,
            file_size_bytes=self.file_size_mb * sandbox.MiB, open_files=self.open_files,
            tmp_bytes=self.tmp_mb * sandbox.MiB, workdir_bytes=self.workdir_mb * sandbox.MiB,
            wall_clock_s=self.wall_clock,
        )

    def spec(self) -> sandbox.SandboxSpec:
        spec = sandbox.default_spec(self.limits(), enabled=self.enabled)
        return sandbox.dataclasses.replace(spec, use_cgroup=self.use_cgroup,
                                           require_process_limit=self.require_process_limit)


def sandboxed_kernel_spec(spec: sandbox.SandboxSpec) -> KernelSpec:
    return KernelSpec(
        argv=[sys.executable, "-m", "grading.launcher", "-f", "{connection_file}"],
        display_name="Python 3 (grading sandbox)",
        language="python",
        interrupt_mode="message",
        # the grader's pid travels with the spec: a launcher whose grader died before it even started
        # (a worker killed between fork and exec) must not take its new parent for the grader
        env={sandbox.SPEC_ENV: spec.to_json(), sandbox.GRADER_PID_ENV: str(os.getpid())},
        metadata={},
    )


def preload_modules(source, packages) -> tuple[str, ...]:
    """The modules the assignment's source notebook (the course's own code: solution and hidden tests)
    imports at the top level of its cells, of the given top-level ``packages``, in the order it does."""
    modules: list[str] = []
    for cell in source.cells:
        if cell.cell_type != "code":
            continue
        try:
            body = ast.parse(cell.source).body
        except SyntaxError:  # IPython syntax (a magic): nothing to preload from it
            continue
        for node in body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else []
            modules += [n for n in names if n.partition(".")[0] in packages and n not in modules]
    return tuple(modules)


class SandboxedKernelClient(AsyncKernelClient):
    """jupyter_client's client, with a wait for the kernel that ends as soon as the kernel is ready."""

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        """Return once the kernel has answered a kernel_info request on the shell channel and its idle
        status has come through IOPub (which proves that channel subscribed: until it is, the kernel's
        messages there are lost). jupyter_client's own wait then listens to IOPub until it has been
        silent for 0.2 s, idle time for every kernel; nbclient ignores messages of other requests."""
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        while True:
            request = self.kernel_info()
            reply = await self._reply(self.shell_channel, request, lambda m: m["msg_type"] == "kernel_info_reply")
            if reply is not None and await self._reply(self.iopub_channel, request, _is_idle) is not None:
                self._handle_kernel_info_reply(reply)
                return
            if not await self._async_is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")

    @staticmethod
    async def _reply(channel, request: str, wanted, within: float = 1.0):
        """The first message on ``channel`` answering ``request`` that is ``wanted``, or None after ``within`` s."""
        end = time.monotonic() + within
        while True:
            try:
                msg = await channel.get_msg(timeout=max(0.0, end - time.monotonic()))
            except Empty:
                return None
            if msg["parent_header"].get("msg_id") == request and wanted(msg):
                return msg


def _is_idle(msg) -> bool:
    return msg["msg_type"] == "status" and msg["content"].get("execution_state") == "idle"


class SandboxedKernelManager(AsyncKernelManager):
    """An AsyncKernelManager whose kernel is started by `grading.launcher` in the sandbox."""

    @default("transport")
    def _transport_default(self):
        return "ipc"

    @default("client_factory")
    def _client_factory_default(self):
        return SandboxedKernelClient

    def __init__(self, **kwargs):
        kwargs.pop("kernel_name", None)  # the notebook's kernelspec name is irrelevant: this one runs
        super().__init__(**kwargs)
        self.sandbox = Sandbox(parent=self)
        self.sandbox_spec = self.sandbox.spec()
        self._private_dir: Path | None = None
        # an empty working folder made for this kernel alone (by `KernelPool`), removed with it
        self.own_workdir: Path | None = None

    @property
    def kernel_spec(self) -> KernelSpec:
        if self._kernel_spec is None:
            self._kernel_spec = sandboxed_kernel_spec(self.sandbox_spec)
        return self._kernel_spec

    @property
    def ipykernel(self) -> bool:
        return True

    async def _async_pre_start_kernel(self, **kw):
        sandbox.check_sandbox(self.sandbox_spec)
        if not self.sandbox_spec.enabled:
            self.log.warning("\n%s", UNSANDBOXED_WARNING)
        self.transport = "ipc"
        self._private_dir = Path(tempfile.mkdtemp(prefix="grading-kernel-"))
        self.connection_file = str(self._private_dir / "kernel.json")
        self.ip = str(self._private_dir / "ipc")
        return await super()._async_pre_start_kernel(**kw)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            for folder in (self._private_dir, self.own_workdir):
                if folder is not None:
                    shutil.rmtree(folder, ignore_errors=True)
            self._private_dir = self.own_workdir = None

    async def _async_kill_kernel(self, restart: bool = False) -> None:
        # SIGTERM to the launcher alone rather than jupyter_client's SIGKILL to its process group: the
        # launcher then kills the sandbox and removes its cgroups before it exits (killed, it would leave
        # them behind). Nobody waits for that here: a thread reaps it, while the grader goes on.
        process = self._launcher()
        if process is None or restart:
            await super()._async_kill_kernel(restart=restart)
            return
        process.terminate()
        threading.Thread(target=_reap, args=(process,), name="reap-kernel", daemon=True).start()
        self.provisioner.process = None  # jupyter_client's mark of a kernel that is gone

    pre_start_kernel = _async_pre_start_kernel
    cleanup_resources = _async_cleanup_resources

    def _launcher(self) -> subprocess.Popen | None:
        process = getattr(self.provisioner, "process", None)
        return process if process is not None and process.poll() is None else None

    def start_wall_clock(self) -> None:
        """Start the kernel's wall clock again now, as it is handed its notebook (see `grading.launcher`)."""
        process = self._launcher()
        if process is not None:
            process.send_signal(signal.SIGUSR1)

    def exit_status(self) -> int | None:
        """The launcher's exit status once the kernel has ended (`sandbox.WALL_CLOCK_EXIT`: wall clock)."""
        process = getattr(self.provisioner, "process", None)
        return None if process is None else process.poll()


def _reap(launcher: subprocess.Popen) -> None:
    """Wait for a launcher told to stop; kill its process group should it hang."""
    try:
        launcher.wait(timeout=10)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(launcher.pid, signal.SIGKILL)
        except OSError:
            pass
        launcher.wait()


class KernelPool:
    """Sandboxed kernels started ahead of the submissions that will run in them: one per process that
    grades submission after submission (a grading worker), so that it never waits for a kernel to start.

    Why this keeps every guarantee of a kernel started for its submission:

    - each kernel is started fresh by `SandboxedKernelManager`, in a sandbox of its own (its own
      namespaces, /tmp, cgroups, connection file and sockets), in an empty working folder made for it
      alone (so no submission's files are there to see: the notebook is sent to it cell by cell);
    - before its submission it runs only the assignment's imports (`preload_modules`: the course's
      code, what the solution imports), and its wall clock starts when it is handed out;
    - `take` hands each kernel out once and forgets it; the caller shuts it down after its one
      notebook. No kernel that ran a submission is ever handed out again;
    - a kernel waiting here cannot be reached by the one running beside it: neither can see the other's
      processes, files or sockets (they live in folders outside both sandboxes).
    """

    def __init__(self, config=None, ahead: int = 1):
        self.config, self.ahead = config, ahead
        self._waiting: deque[SandboxedKernelManager] = deque()
        atexit.register(self.close)

    def take(self, preload: tuple[str, ...]) -> SandboxedKernelManager:
        """A started kernel (perhaps still booting) that has imported ``preload``; the next one starts."""
        while self._waiting and self._waiting[0].sandbox_spec.preload != preload:
            _shut_down(self._waiting.popleft())  # started for another assignment's imports
        kernel = self._waiting.popleft() if self._waiting else None
        try:
            if kernel is None:
                kernel = self._start(preload)
            while len(self._waiting) < self.ahead:
                self._waiting.append(self._start(preload))
        except BaseException:  # the caller never gets the kernel: it is stopped here, not left running
            if kernel is not None:
                _shut_down(kernel)
            raise
        return kernel

    def _start(self, preload: tuple[str, ...]) -> SandboxedKernelManager:
        kernel = SandboxedKernelManager(config=self.config) if self.config is not None else SandboxedKernelManager()
        kernel.sandbox_spec = dataclasses.replace(kernel.sandbox_spec, preload=preload)
        kernel.own_workdir = Path(tempfile.mkdtemp(prefix="grading-run-"))
        run_sync(kernel.start_kernel)(cwd=str(kernel.own_workdir))
        return kernel

    def close(self) -> None:
        while self._waiting:
            _shut_down(self._waiting.popleft())


def _shut_down(kernel: SandboxedKernelManager) -> None:
    try:
        run_sync(kernel.shutdown_kernel)(now=True)
    except Exception:  # noqa: BLE001 (already gone: its resources are cleaned up all the same)
        run_sync(kernel.cleanup_resources)()
