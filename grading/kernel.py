"""A jupyter_client kernel manager whose kernels run in the sandbox, and its configuration.

nbgrader (through `grading.preprocessors.SandboxedExecute`), nbclient, or a long-lived grading worker
use `SandboxedKernelManager` like any kernel manager. Its kernelspec is built here rather than
installed: the command is ``python -m grading.launcher -f {connection_file}``, interrupts travel as
messages (a signal cannot cross into the sandbox's session), and the transport is IPC, since the
kernel has no network. Each kernel gets a private folder for its connection file and sockets, the
only one of the grader's folders that the sandbox can write to, so no kernel can reach another's.

The settings are the `Sandbox` class's, set in ``nbgrader_config.py`` or on the command line
(``--Sandbox.enabled=False`` grades without the sandbox, and says so loudly).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from jupyter_client.kernelspec import KernelSpec
from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, Float, Integer, default
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


class SandboxedKernelManager(AsyncKernelManager):
    """An AsyncKernelManager whose kernel is started by `grading.launcher` in the sandbox."""

    @default("transport")
    def _transport_default(self):
        return "ipc"

    def __init__(self, **kwargs):
        kwargs.pop("kernel_name", None)  # the notebook's kernelspec name is irrelevant: this one runs
        super().__init__(**kwargs)
        self.sandbox = Sandbox(parent=self)
        self.sandbox_spec = self.sandbox.spec()
        self._private_dir: Path | None = None

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
        if self._private_dir is not None and not restart:
            shutil.rmtree(self._private_dir, ignore_errors=True)
            self._private_dir = None

    pre_start_kernel = _async_pre_start_kernel
    cleanup_resources = _async_cleanup_resources

    def exit_status(self) -> int | None:
        """The launcher's exit status once the kernel has ended (`sandbox.WALL_CLOCK_EXIT`: wall clock)."""
        process = getattr(self.provisioner, "process", None)
        return None if process is None else process.poll()
