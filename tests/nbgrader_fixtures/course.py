"""A temporary copy of the course directory, and nbgrader run in it as an instructor runs it.

Everything nbgrader writes (``gradebook.db``, ``submitted/``, ``autograded/``, ``feedback/``, the CSV)
lands in the copy, never in the repository.
"""

from __future__ import annotations

import os
import shlex
import shutil
import string
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The assignments, one per chapter, in the order of the book.
ASSIGNMENTS = sorted(p.name for p in (REPO_ROOT / "solutions").iterdir() if p.is_dir())


def notebook_name(assignment: str) -> str:
    """Each assignment holds one notebook named like its folder."""
    return f"{assignment}.ipynb"


def nbgrader_env() -> dict[str, str]:
    """The environment nbgrader needs: the interpreter's bin/ first on PATH (nbgrader runs `alembic`)."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def _expand(command: str, env: dict[str, str]) -> list[str]:
    """The command's words, with ``$NAME`` and ``${NAME}`` replaced from ``env`` (KeyError if unset)."""
    return [string.Template(word).substitute(env) for word in shlex.split(command)]


@dataclass
class CommandResult:
    command: str
    returncode: int | None  # None: started in the background (`Course.start`)
    output: str
    seconds: float


@dataclass
class Course:
    """A copy of the course (config and solutions) in ``root``; ``run`` records every command."""

    root: Path
    history: list[CommandResult] = field(default_factory=list)

    @classmethod
    def copy_from_repo(cls, root: Path) -> Course:
        root.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
        shutil.copytree(REPO_ROOT / "solutions", root / "solutions",
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        return cls(root)

    def run(self, command: str, timeout: float = 900, env: dict[str, str] | None = None) -> CommandResult:
        """Run a shell-free command line (as typed in the instructor guide) in the course directory.

        The exit status is recorded but never trusted: nbgrader exits 0 after some failures and 1
        when one student of many fails, so callers check what the command wrote. ``env`` adds to or
        replaces variables of the environment; ``$NAME`` in the command is replaced by its value, as
        a shell would (the guides write addresses that differ between machines that way).
        """
        start = time.perf_counter()
        env = {**nbgrader_env(), **(env or {})}
        proc = subprocess.run(
            _expand(command, env), check=False, cwd=self.root, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=timeout,
        )
        result = CommandResult(command, proc.returncode, proc.stdout, time.perf_counter() - start)
        self.history.append(result)
        return result

    def start(self, command: str, env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen:
        """Start a long-running command (a Dask scheduler or worker) in its own process group.

        It is recorded like `run`'s commands, with no exit status; its output goes to ``log``. Stop it
        with ``os.killpg(process.pid, signal)``.
        """
        env = {**nbgrader_env(), **(env or {})}
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 (the child keeps it)
        process = subprocess.Popen(_expand(command, env), cwd=self.root, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self.history.append(CommandResult(command, None, "", 0.0))
        return process

    def release_path(self, assignment: str) -> Path:
        return self.root / "exercises" / assignment / notebook_name(assignment)

    def source_path(self, assignment: str) -> Path:
        return self.root / "solutions" / assignment / notebook_name(assignment)

    def submission_path(self, student: str, assignment: str) -> Path:
        return self.root / "submitted" / student / assignment / notebook_name(assignment)

    def feedback_path(self, student: str, assignment: str) -> Path:
        return self.root / "feedback" / student / assignment / f"{assignment}.html"

    def submit(self, student: str, assignment: str, notebook) -> Path:
        """Put a student's notebook where the instructor collects it: submitted/<student>/<assignment>/."""
        import nbformat

        path = self.submission_path(student, assignment)
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, str(path))
        return path
