"""The kernel command of the sandboxed kernelspec: ``python -m grading.launcher -f CONNECTION_FILE``.

It runs outside the sandbox, as the grader, and stays the parent of the sandbox for the kernel's whole
life: it reads the `SandboxSpec` that `grading.kernel.SandboxedKernelManager` put in its environment,
creates a cgroup where it can, starts ipykernel inside bubblewrap in the current folder (the notebook's,
where jupyter_client starts kernels), and kills the sandbox when the wall clock runs out
(exit status `WALL_CLOCK_EXIT`). Killing the launcher kills the sandbox too (``--die-with-parent``), and
the launcher kills it when the grader that started it is gone (a grading worker killed mid-notebook
leaves no kernel behind).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from grading import sandbox


#: The kernel's main program when it preloads modules: ipykernel_launcher's, after the imports. The
#: notebook never sees a name bound here (ipykernel gives it a namespace of its own), the current folder
#: leaves sys.path first as ipykernel_launcher does, and a module that fails to import is left for the
#: notebook to fail on, as it would without preloading.
PRELOADING_MAIN = (
    "import importlib, sys\n"
    "if sys.path[0] == '':\n    del sys.path[0]\n"
    "for name in sys.argv.pop(1).split(','):\n"
    "    try:\n        importlib.import_module(name)\n"
    "    except Exception:\n        pass\n"
    "from ipykernel import kernelapp\n"
    "kernelapp.launch_new_instance()\n"
)


def kernel_command(spec: sandbox.SandboxSpec, connection_file: str, extra: list[str]) -> list[str]:
    if spec.preload:
        return [spec.python, "-c", PRELOADING_MAIN, ",".join(spec.preload), "-f", connection_file, *extra]
    return [spec.python, "-m", "ipykernel_launcher", "-f", connection_file, *extra]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 2 or argv[0] != "-f":
        print("usage: python -m grading.launcher -f CONNECTION_FILE [ipykernel arguments]", file=sys.stderr)
        return 2
    connection_file, extra = argv[1], argv[2:]
    spec = sandbox.SandboxSpec.from_json(os.environ[sandbox.SPEC_ENV])
    # The wall clock starts again when the grader hands the kernel its notebook (SIGUSR1, sent once the
    # kernel answers: `SandboxedKernelManager.start_wall_clock`), so that a kernel started ahead of its
    # submission loses none of its time waiting for it.
    wall_clock = spec.limits.wall_clock_s
    deadline = [time.monotonic() + wall_clock]

    def restart_wall_clock(signum, frame):
        deadline[0] = time.monotonic() + wall_clock

    signal.signal(signal.SIGUSR1, restart_wall_clock)
    command = kernel_command(spec, connection_file, extra)
    # ipykernel's banner goes to stdout; errors (a kernel that cannot start) stay on stderr
    if spec.enabled:
        private = [Path(connection_file).resolve().parent]
        child, groups = sandbox.start_sandbox(spec, Path.cwd(), private, command, stdout=subprocess.DEVNULL)
    else:
        env = dict(os.environ)
        env.pop(sandbox.SPEC_ENV, None)
        env.pop(sandbox.GRADER_PID_ENV, None)
        child, groups = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL), sandbox.Cgroups()

    def stop(signum, frame):  # jupyter_client's SIGTERM/SIGKILL reach the whole process group
        child.kill()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # interrupts travel as messages (interrupt_mode)
    try:
        grader = int(os.environ.get(sandbox.GRADER_PID_ENV, os.getppid()))
        status = _wait(child, deadline, wall_clock, grader)
    finally:
        if groups.oom_kills():
            print("grading.launcher: the kernel ran out of memory", file=sys.stderr)
        groups.remove()
    return status if status >= 0 else 128 - status


def _wait(child: subprocess.Popen, deadline: list[float], wall_clock_s: float, parent: int) -> int:
    """The kernel's exit status; kill it at its wall clock (``deadline[0]``, which a signal may move), or
    as soon as the grader (``parent``) is gone."""
    while True:
        try:
            return child.wait(timeout=max(0.0, min(1.0, deadline[0] - time.monotonic())))
        except subprocess.TimeoutExpired:
            pass
        if os.getppid() != parent:  # re-parented: whoever started this kernel has died
            child.kill()
            child.wait()
            print("grading.launcher: stopped the kernel because its grader is gone", file=sys.stderr)
            return -signal.SIGKILL
        if time.monotonic() >= deadline[0]:
            child.kill()
            child.wait()
            print(f"grading.launcher: stopped the kernel after its wall clock of {wall_clock_s:g} s",
                  file=sys.stderr)
            return sandbox.WALL_CLOCK_EXIT


if __name__ == "__main__":
    sys.exit(main())
