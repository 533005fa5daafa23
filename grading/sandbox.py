"""The sandbox a submission's kernel runs in: a bubblewrap command line, resource limits, a preflight.

`bwrap_command` builds the command that runs a program (ipykernel) with:

- every namespace unshared (no network: the kernel talks to nbgrader over IPC sockets in a folder of
  its own), an unprivileged uid and gid (65534) with every capability dropped, no nested user
  namespaces, a new session, and death with its parent;
- a new root holding only ``/usr`` (and the ``/lib``/``/bin`` links), a few files of ``/etc``, the
  interpreter's tree and the virtual environment, the course's helper package and the data folder,
  all read-only;
- two writable places (the rest of the new root is remounted read-only), both size-capped tmpfs that
  vanish with the kernel: ``/tmp``, and the
  notebook's working folder, into which the folder's files other than notebooks are bound read-only
  (so the notebook being graded, whose test cells hold the hidden tests, is not there);
- `Limits` on processes and threads, memory, file size and open files, and a wall clock per kernel
  (enforced by the launcher). Memory and processes are capped by cgroups where they can be created
  (v2 ``memory.max``/``pids.max``, else the v1 ``memory`` and ``pids`` controllers), otherwise by
  ``RLIMIT_DATA`` and ``RLIMIT_NPROC`` (``prlimit`` inside the sandbox); never ``RLIMIT_AS``, under
  which TensorFlow fails. Linux does not apply ``RLIMIT_NPROC`` to root, so a grader running as root
  without a pids cgroup stops (`NO_PROCESS_LIMIT`) unless told to accept the risk.

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
#: the process that started the launcher: when it is no longer the launcher's parent, the grader is gone
GRADER_PID_ENV = "GRADING_GRADER_PID"
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

    memory_bytes: int = 2 * GiB
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
    require_process_limit: bool = True  # as root, stop unless a cgroup can cap processes
    # modules the kernel imports before it answers: the assignment's own, so that a kernel started
    # ahead of its submission has done them (`grading.kernel.preload_modules`)
    preload: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SandboxSpec:
        raw = json.loads(text)
        raw["limits"] = Limits(**raw["limits"])
        raw["read_only"] = tuple(raw["read_only"])
        raw["preload"] = tuple(raw.get("preload", ()))
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
                  *, memory_rlimit: bool = True, processes: int | None = None) -> list[str]:
    """The command line that runs ``command`` in the sandbox, in ``workdir``.

    ``private_dirs`` (the kernel's connection file and IPC sockets) are bound writable at the same
    path. The rlimits are set by ``prlimit`` inside, once the user namespace exists.
    """

    def bind(source: str, dest: str, writable: bool = False) -> list[str]:
        return ["--bind" if writable else "--ro-bind", source, dest]

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
        args += bind(path, path)
    if spec.course_lib:
        args += bind(spec.course_lib, f"{COURSE_LIB}/course_utils")
    args += ["--size", str(limits.workdir_bytes), "--tmpfs", str(workdir)]
    for entry in sorted(workdir.iterdir()):
        # the folder's own files, read-only; never a notebook (the one being graded holds hidden tests)
        if entry.suffix != ".ipynb" and not entry.name.startswith("."):
            args += bind(str(entry), str(entry))
    for path in private_dirs:
        args += bind(str(path), str(path), writable=True)
    # the new root itself is a tmpfs the sandbox's user owns: read-only, so that only the capped
    # tmpfs mounts above stay writable
    args += ["--remount-ro", "/", "--chdir", str(workdir), "--"]
    rlimits = [f"--nproc={processes or limits.processes}", f"--fsize={limits.file_size_bytes}",
               f"--nofile={limits.open_files}", "--core=0"]
    if memory_rlimit:
        rlimits.append(f"--data={limits.memory_bytes}")
    return args + ["prlimit", *rlimits, "--", *command]


def _tasks_of(uid: int) -> int:
    """Processes and threads that ``uid`` runs now (RLIMIT_NPROC counts them all)."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                continue
    return count


NO_PROCESS_LIMIT = (
    "Grading stopped: the sandbox cannot limit how many processes a submission starts. Running as\n"
    "root, the sandbox's processes belong to root, for which Linux does not enforce RLIMIT_NPROC, and\n"
    "no cgroup with a pids controller could be created here, so one fork bomb could fill the\n"
    "machine's process table.\nWhat to do:\n"
    "  - run nbgrader as an ordinary user (RLIMIT_NPROC then applies), or\n"
    "  - give the grader a writable cgroup with the pids controller (cgroup v2 with pids delegated,\n"
    "    or a cgroup v1 pids hierarchy), or\n"
    "  - accept the risk: c.Sandbox.require_process_limit = False in nbgrader_config.py."
)


def start_sandbox(spec: SandboxSpec, workdir: Path, private_dirs: list[Path], command: list[str],
                  **popen_kwargs) -> tuple[subprocess.Popen, Cgroups]:
    """Start ``command`` in the sandbox; return the bubblewrap process and its cgroups.

    Memory and processes are capped by cgroups where they can be created (v2, or v1 controllers),
    otherwise by RLIMIT_DATA and RLIMIT_NPROC. RLIMIT_NPROC counts every process of the sandbox's
    user outside it, which is the grader's: the limit is raised by what that user already runs, and
    for root it does not apply at all (see `NO_PROCESS_LIMIT`).
    """
    groups = create_cgroups(spec.limits) if spec.use_cgroup else Cgroups()
    if os.geteuid() == 0:
        if not groups.processes and spec.require_process_limit:
            groups.remove()
            raise SandboxUnavailableError(NO_PROCESS_LIMIT)
        processes = spec.limits.processes
    else:
        processes = spec.limits.processes + _tasks_of(os.getuid())
    command = bwrap_command(spec, workdir, private_dirs, command, memory_rlimit=not groups.memory,
                            processes=processes)

    def enter() -> None:  # in the child, before bubblewrap starts
        groups.join()
        try:  # the out-of-memory killer picks the sandbox first
            Path("/proc/self/oom_score_adj").write_text("1000")
        except OSError:
            pass

    try:
        process = subprocess.Popen(command, preexec_fn=enter,
                                   env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, **popen_kwargs)
    except BaseException:
        groups.remove()
        raise
    return process, groups


# --- cgroups --------------------------------------------------------------------------------------------


def _cgroup_mounts() -> tuple[Path | None, dict[str, Path]]:
    """The cgroup v2 mount point, and the v1 mount point of each v1 controller."""
    v2, v1 = None, {}
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            fields, mount = right.split(" "), Path(left.split(" ")[4])
            if fields[0] == "cgroup2":
                v2 = mount
            elif fields[0] == "cgroup" and len(fields) > 2:
                for option in fields[2].split(","):
                    v1[option] = mount
    except (OSError, IndexError):
        pass
    return v2, v1


def _own_paths() -> dict[str, str]:
    """This process's cgroup path in each hierarchy: "" for v2, the controller names for v1."""
    paths = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                paths[name] = path.lstrip("/")
    except (OSError, ValueError):
        pass
    return paths


@dataclass
class Cgroups:
    """The cgroup folders one sandbox joins, and which of its limits they enforce."""

    folders: list[Path] = field(default_factory=list)
    memory: bool = False
    processes: bool = False

    def join(self) -> None:
        for folder in self.folders:
            (folder / "cgroup.procs").write_text("0")

    def oom_kills(self) -> int:
        kills = 0
        for folder in self.folders:
            for name in ("memory.events", "memory.oom_control"):
                try:
                    for line in (folder / name).read_text().splitlines():
                        key, _, value = line.partition(" ")
                        if key == "oom_kill":
                            kills += int(value)
                except (OSError, ValueError):
                    continue
        return kills

    def remove(self) -> None:
        """Kill whatever is left in the cgroups and remove them."""
        import signal
        import time

        for folder in self.folders:
            for _ in range(100):
                try:
                    if (folder / "cgroup.kill").exists():
                        (folder / "cgroup.kill").write_text("1")
                    else:
                        for pid in (folder / "cgroup.procs").read_text().split():
                            os.kill(int(pid), signal.SIGKILL)
                    folder.rmdir()
                    break
                except ProcessLookupError:
                    continue
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def _try_folder(folder: Path, settings: dict[str, str]) -> bool:
    """Create ``folder`` and write the settings that exist there; False (and no folder) if it fails."""
    try:
        folder.mkdir()
    except OSError:
        return False
    try:
        written = 0
        for name, value in settings.items():
            if (folder / name).exists():
                (folder / name).write_text(value)
                written += 1
        if written:
            return True
    except OSError:
        pass
    try:
        folder.rmdir()
    except OSError:
        pass
    return False


def create_cgroups(limits: Limits, name: str | None = None) -> Cgroups:
    """Cgroups that cap one sandbox's memory and processes, where this machine lets us create them.

    cgroup v2 first (``memory.max``, ``pids.max``), then the v1 ``memory`` and ``pids`` controllers
    for what v2 could not cap. What no cgroup caps, the caller limits with rlimits.
    """
    name = name or f"grading-{os.getpid()}"
    v2, v1 = _cgroup_mounts()
    own = _own_paths()
    groups = Cgroups()
    if v2 is not None and "" in own:
        folder = v2 / own[""] / name
        if _try_folder(folder, {"memory.max": str(limits.memory_bytes), "memory.swap.max": "0",
                                "pids.max": str(limits.processes)}):
            groups.folders.append(folder)
            groups.memory = (folder / "memory.max").exists()
            groups.processes = (folder / "pids.max").exists()
    for controller, setting, value in (("memory", "memory.limit_in_bytes", limits.memory_bytes),
                                       ("pids", "pids.max", limits.processes)):
        if getattr(groups, "memory" if controller == "memory" else "processes") or controller not in v1:
            continue
        folder = v1[controller] / own.get(controller, "") / name
        if _try_folder(folder, {setting: str(value)}):
            groups.folders.append(folder)
            setattr(groups, "memory" if controller == "memory" else "processes", True)
    return groups


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
    key = dataclasses.replace(spec, preload=()).to_json()  # the same sandbox, whatever it imports
    if not spec.enabled or key in _checked:
        return
    if shutil.which("bwrap") is None:
        raise SandboxUnavailableError(
            "Grading stopped: the sandbox cannot start because bubblewrap (bwrap) is not installed.\n"
            + HOW_TO_FIX
        )
    import tempfile

    with tempfile.TemporaryDirectory(prefix="grading-preflight-") as folder:
        try:
            process, groups = start_sandbox(spec, Path(folder), [], [spec.python, "-c", "import course_utils"],
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                _, stderr = process.communicate(timeout=60)
            finally:
                groups.remove()
        except (OSError, subprocess.TimeoutExpired) as error:
            raise SandboxUnavailableError(f"Grading stopped: the sandbox did not start ({error}).\n"
                                          + HOW_TO_FIX) from None
    proc = subprocess.CompletedProcess(process.args, process.returncode, "", stderr)
    if proc.returncode != 0:
        detail = proc.stderr.strip().splitlines()[-1:] or ["(no message)"]
        raise SandboxUnavailableError(
            f"Grading stopped: the sandbox cannot start on this machine: {_diagnose(proc.stderr)}.\n"
            f"bubblewrap said: {detail[0]}\n" + HOW_TO_FIX
        )
    _checked[key] = None
