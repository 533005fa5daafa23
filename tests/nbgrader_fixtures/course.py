"""A temporary copy of the course directory, and nbgrader run in it as an instructor runs it.

Everything nbgrader writes (``gradebook.db``, ``submitted/``, ``autograded/``, ``feedback/``, the CSV)
lands in the copy, never in the repository.
"""

from __future__ import annotations

import os
import shlex
import shutil
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


@dataclass
class CommandResult:
    command: str
    returncode: int
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
        replaces variables of the environment.
        """
        start = time.perf_counter()
        proc = subprocess.run(
            shlex.split(command), check=False, cwd=self.root, env={**nbgrader_env(), **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=timeout,
        )
        result = CommandResult(command, proc.returncode, proc.stdout, time.perf_counter() - start)
        self.history.append(result)
        return result

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
