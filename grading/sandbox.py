"""The sandbox a submission's kernel runs in: a bubblewrap command line, resource limits, a preflight.

`bwrap_command` builds the command that runs a program (ipykernel) with:

- every namespace unshared (no network: the kernel talks to nbgrader over IPC sockets in a folder of
  its own), an unprivileged uid and gid (65534) with every capability dropped, no nested user
  namespaces, a new session, and death with its parent;
- a new root holding only ``/usr`` (and the ``/lib``/``/bin`` links), a few files of ``/etc``, the
  interpreter's tree and the virtual environment, the course's helper package and the data folder,
  all read-only;
- two writable places, both size-capped tmpfs that vanish with the kernel: ``/tmp``, and the
  notebook's working folder, into which the folder's files other than notebooks are bound read-only
  (so the notebook being graded, whose test cells hold the hidden tests, is not there);
- `Limits` on processes, file size and open files (``prlimit`` inside the sandbox), memory (a cgroup
  v2 ``memory.max``/``pids.max`` where one can be created, ``RLIMIT_DATA`` otherwise; never
  ``RLIMIT_AS``, under which TensorFlow fails) and a wall clock per kernel (enforced by the launcher).

`check_sandbox` starts a trivial sandbox once and raises `SandboxUnavailableError`, saying why and
what to do, if it cannot start. Only the standard library is imported here: the launcher, which runs
for every kernel, imports this module.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

MiB = 1 << 20
GiB = 1 << 30

#: uid and gid of the kernel inside the sandbox ("nobody")
SANDBOX_UID = 65534
#: where the course's helper package is bound inside the sandbox (and put on PYTHONPATH)
COURSE_LIB = "/opt/course"
#: the environment variable that carries the `SandboxSpec` from the kernel manager to the launcher
SPEC_ENV = "GRADING_SANDBOX_SPEC"
#: exit status of the launcher when it stopped a kernel at its wall clock (as timeout(1) does)
WALL_CLOCK_EXIT = 124
#: the few files of /etc a Python process needs (dynamic loader cache, time zone, user names, fonts)
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "passwd", "group", "nsswitch.conf", "fonts")

_NAMESPACE_FLAGS = [
    "--unshare-all",  # user, ipc, pid, net, uts, cgroup
    "--unshare-user",
    "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
    "--disable-userns",  # no nested user namespaces (they would give capabilities back)
    "--cap-drop", "ALL",  # as root, --unshare-all alone keeps every capability
    "--die-with-parent",
    "--new-session",  # no TIOCSTI into the grader's terminal
    "--hostname", "sandbox",
]


class SandboxUnavailableError(SystemExit):
    """The sandbox cannot start on this machine; the message says why and what to do.

    A `SystemExit`, so that nbgrader (which records other exceptions per submission and carries on)
    stops the whole run instead of grading every submission as failed.
    """


@dataclass(frozen=True)
class Limits:
    """Resource limits for one sandboxed kernel (its processes and threads together)."""

    memory_bytes: int = 4 * GiB
    processes: int = 512  # threads count too: TensorFlow starts a pool per core
    file_size_bytes: int = 256 * MiB
    open_files: int = 1024
    tmp_bytes: int = 512 * MiB  # the tmpfs on /tmp
    workdir_bytes: int = 256 * MiB  # the tmpfs on the working folder
    shm_bytes: int = 64 * MiB  # the tmpfs on /dev/shm
    wall_clock_s: float = 600.0  # the kernel's whole life: one notebook


@dataclass(frozen=True)
class SandboxSpec:
    """Everything the launcher needs to start one sandboxed kernel; travels as JSON in `SPEC_ENV`."""

    python: str  # the interpreter that runs ipykernel (a virtual environment's, usually)
    read_only: tuple[str, ...]  # host paths bound read-only at the same place
    course_lib: str | None  # host folder of course_utils, bound at COURSE_LIB/course_utils
    env: dict[str, str]  # the kernel's whole environment (nothing else of the grader's passes)
    limits: Limits = field(default_factory=Limits)
    enabled: bool = True  # False: no sandbox at all (the loud, explicit opt-out)
    use_cgroup: bool = True

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SandboxSpec:
        raw = json.loads(text)
        raw["limits"] = Limits(**raw["limits"])
        raw["read_only"] = tuple(raw["read_only"])
        return cls(**raw)


def interpreter_paths(python: str = sys.executable) -> list[str]:
    """Host folders an interpreter needs: its virtual environment and the base installation it links to."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    python_path = Path(python)
    if python_path.is_symlink():  # a venv's python is a link into the base installation
        paths.add(str(python_path.resolve().parent.parent))
    # /usr is bound anyway; a prefix inside it needs nothing more
    return sorted(p for p in paths if not _is_within(Path(p), Path("/usr")))


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder)
        return True
    except ValueError:
        return False


_prepared: list[str] = []


def prepare_data() -> None:
    """Make sure the data the kernels read exists before any kernel starts (they cannot write the cache).

    With ``MNIST_DIR`` set nothing is needed; otherwise `course_utils.data.find_mnist_files` finds
    MNIST in the cache or downloads it, and offline writes the embedded sample's IDX files there.
    Runs here, in the trusted grader, once per process.
    """
    if _prepared or os.environ.get("MNIST_DIR"):
        return
    import warnings

    from course_utils.data import EmbeddedDataWarning, find_mnist_files

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EmbeddedDataWarning)
        _prepared.append(str(find_mnist_files()))


def data_binding(environ: dict[str, str] | None = None) -> tuple[str | None, dict[str, str]]:
    """The data folder to bind read-only and the variable that points the kernel at it.

    ``MNIST_DIR`` if it is set; otherwise the course's folder in the per-user cache (which holds the
    downloaded MNIST and the embedded sample's IDX files), found through ``XDG_CACHE_HOME``.
    """
    environ = os.environ if environ is None else environ
    if environ.get("MNIST_DIR"):
        folder = Path(environ["MNIST_DIR"]).expanduser().resolve()
        return str(folder), {"MNIST_DIR": str(folder)}
    base = Path(environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser().resolve()
    folder = base / "mlp-keras-course"
    return (str(folder) if folder.is_dir() else None), {"XDG_CACHE_HOME": str(base)}


def kernel_environment(data_env: dict[str, str], python: str = sys.executable) -> dict[str, str]:
    """The environment inside the sandbox: a fixed list, so no secret of the grader's leaks in."""
    env = {
        "PATH": f"{Path(python).parent}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/tmp",
        "USER": "nobody",
        "LOGNAME": "nobody",
        "LANG": "C.UTF-8",
        "PYTHONPATH": COURSE_LIB,
        "PYTHONDONTWRITEBYTECODE": "1",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "IPYTHONDIR": "/tmp/ipython",
        "JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(os.cpu_count() or 1)),
    }
    for name in ("NBGRADER_EXECUTION", "TZ", "TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS"):
        if name in os.environ:
            env[name] = os.environ[name]
    env.update(data_env)
    return env


def default_spec(limits: Limits | None = None, *, enabled: bool = True, python: str = sys.executable) -> SandboxSpec:
    """The sandbox for this interpreter, this course's helper package and this machine's data folder."""
    import course_utils  # only for its location; nothing of it runs here

    prepare_data()
    data_folder, data_env = data_binding()
    read_only = interpreter_paths(python) + ([data_folder] if data_folder else [])
    return SandboxSpec(
        python=python,
        read_only=tuple(read_only),
        course_lib=str(Path(course_utils.__file__).resolve().parent),
        env=kernel_environment(data_env, python),
        limits=limits or Limits(),
        enabled=enabled,
    )


def _root_filesystem() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in ETC_FILES:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    return args


def bwrap_command(spec: SandboxSpec, workdir: Path, private_dirs: list[Path], command: list[str],
                  *, memory_rlimit: bool = True) -> list[str]:
    """The command line that runs ``command`` in the sandbox, in ``workdir``.

    ``private_dirs`` (the kernel's connection file and IPC sockets) are bound writable at the same
    path. The limits are set by ``prlimit`` inside, after the user namespace exists: set outside, the
    process limit would count every process of the grader's own user.
    """
    limits = spec.limits
    workdir = workdir.resolve()
    args = ["bwrap", *_NAMESPACE_FLAGS, "--clearenv"]
    for name, value in sorted(spec.env.items()):
        args += ["--setenv", name, value]
    args += _root_filesystem()
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(limits.shm_bytes), "--tmpfs", "/dev/shm"]
    # /tmp first: a bind below /tmp made before this tmpfs would be hidden by it
    args += ["--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
    for path in spec.read_only:
        args += ["--ro-bind", path, path]
    if spec.course_lib:
        args += ["--ro-bind", spec.course_lib, f"{COURSE_LIB}/course_utils"]
    args += ["--size", str(limits.workdir_bytes), "--tmpfs", str(workdir)]
    for entry in sorted(workdir.iterdir()):
        # the folder's own files, read-only; never a notebook (the one being graded holds hidden tests)
        if entry.suffix != ".ipynb" and not entry.name.startswith("."):
            args += ["--ro-bind", str(entry), str(entry)]
    for path in private_dirs:
        args += ["--bind", str(path), str(path)]
    args += ["--chdir", str(workdir), "--"]
    rlimits = [f"--nproc={limits.processes}", f"--fsize={limits.file_size_bytes}",
               f"--nofile={limits.open_files}", "--core=0"]
    if memory_rlimit:
        rlimits.append(f"--data={limits.memory_bytes}")
    return args + ["prlimit", *rlimits, "--", *command]


# --- cgroup v2 ----------------------------------------------------------------------------------------


def _cgroup2_mount() -> Path | None:
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            if right.split(" ")[0] == "cgroup2":
                return Path(left.split(" ")[4])
    except OSError:
        pass
    return None


def own_cgroup() -> Path | None:
    """This process's cgroup v2 folder, or None (no cgroup v2 mounted)."""
    mount = _cgroup2_mount()
    if mount is None:
        return None
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return mount / line[3:].lstrip("/")
    except OSError:
        pass
    return None


def create_cgroup(limits: Limits, parent: Path | None = None, name: str | None = None) -> Path | None:
    """A fresh cgroup with ``memory.max`` and ``pids.max`` set, or None where none can be made.

    None when cgroup v2 is not mounted, the folder is not writable, or the memory and pids
    controllers are not enabled for it (the caller then falls back to ``RLIMIT_DATA``).
    """
    parent = parent or own_cgroup()
    if parent is None:
        return None
    group = parent / (name or f"grading-{os.getpid()}")
    try:
        group.mkdir()
    except OSError:
        return None
    try:
        (group / "memory.max").write_text(str(limits.memory_bytes))
        (group / "pids.max").write_text(str(limits.processes))
        if (group / "memory.swap.max").exists():
            (group / "memory.swap.max").write_text("0")
        return group
    except OSError:
        remove_cgroup(group)
        return None


def remove_cgroup(group: Path) -> None:
    """Kill whatever is left in ``group`` and remove it."""
    try:
        if (group / "cgroup.kill").exists():
            (group / "cgroup.kill").write_text("1")
        for _ in range(50):
            try:
                group.rmdir()
                return
            except OSError:
                import time

                time.sleep(0.02)
    except OSError:
        pass


def cgroup_oom_kills(group: Path) -> int:
    try:
        for line in (group / "memory.events").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


# --- preflight ------------------------------------------------------------------------------------------

_checked: dict[str, None] = {}

HOW_TO_FIX = (
    "What to do:\n"
    "  - install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap);\n"
    "  - allow unprivileged user namespaces: sysctl -w kernel.unprivileged_userns_clone=1 and\n"
    "    sysctl -w user.max_user_namespaces=15000 (Ubuntu 24.04 and later also:\n"
    "    sysctl -w kernel.apparmor_restrict_unprivileged_userns=0);\n"
    "  - inside Docker, the default seccomp profile forbids namespaces: run the container with\n"
    "    --security-opt seccomp=unconfined (and --security-opt apparmor=unconfined), or grade on the host;\n"
    "  - or, knowing that student code then runs with your permissions and can read the solutions and\n"
    "    edit the gradebook, grade without the sandbox: add --Sandbox.enabled=False to the command."
)


def _diagnose(stderr: str) -> str:
    text = stderr.lower()
    if "no permissions to creat" in text or "operation not permitted" in text or "uid map" in text:
        return ("the kernel refuses to create user namespaces (unprivileged user namespaces are "
                "disabled, or a container's seccomp or AppArmor profile forbids them)")
    if "no such file or directory" in text and "execvp" in text:
        return "a program the sandbox runs is missing inside it"
    return "bubblewrap failed"


def check_sandbox(spec: SandboxSpec) -> None:
    """Start a trivial sandbox with ``spec`` once per process; raise `SandboxUnavailableError` if it fails."""
    key = spec.to_json()
    if not spec.enabled or key in _checked:
        return
    if shutil.which("bwrap") is None:
        raise SandboxUnavailableError(
            "Grading stopped: the sandbox cannot start because bubblewrap (bwrap) is not installed.\n"
            + HOW_TO_FIX
        )
    import tempfile

    with tempfile.TemporaryDirectory(prefix="grading-preflight-") as folder:
        command = bwrap_command(spec, Path(folder), [], [spec.python, "-c", "import course_utils"])
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise SandboxUnavailableError(f"Grading stopped: the sandbox did not start ({error}).\n"
                                          + HOW_TO_FIX) from None
    if proc.returncode != 0:
        detail = proc.stderr.strip().splitlines()[-1:] or ["(no message)"]
        raise SandboxUnavailableError(
            f"Grading stopped: the sandbox cannot start on this machine: {_diagnose(proc.stderr)}.\n"
            f"bubblewrap said: {detail[0]}\n" + HOW_TO_FIX
        )
    _checked[key] = None
