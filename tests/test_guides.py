"""The nbgrader settings the guides state are the ones `nbgrader_config.py` sets.

The config file is loaded as nbgrader loads it (traitlets' Python config loader); nothing is run.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbgrader.preprocessors import LimitOutput
from traitlets.config.loader import PyFileConfigLoader

REPO_ROOT = Path(__file__).resolve().parents[1]
GUIDES = REPO_ROOT / "book" / "guides"
GUIDE_NAMES = ["student_guide.md", "instructor_guide.md"]


@pytest.fixture(scope="module")
def config():
    return PyFileConfigLoader("nbgrader_config.py", path=str(REPO_ROOT)).load_config()


@pytest.fixture(scope="module")
def output_limit(config):
    """The autograde step that cuts long output, configured as nbgrader configures it."""
    steps = [s for s in config.Autograde.autograde_preprocessors if issubclass(s, LimitOutput)]
    assert len(steps) == 1, config.Autograde.autograde_preprocessors
    return steps[0](config=config)


def _guide(name: str) -> str:
    # Markdown wraps lines: compare with single spaces.
    return " ".join((GUIDES / name).read_text(encoding="utf-8").split())


@pytest.mark.parametrize("guide", GUIDE_NAMES)
def test_guides_state_the_cell_timeout(config, guide):
    # every "N seconds" in the guides is the per-cell limit (other durations are "a few seconds")
    stated = {int(n.replace(",", "")) for n in re.findall(r"(\d[\d,]*) seconds", _guide(guide))}
    assert stated == {config.ExecutePreprocessor.timeout}, stated


def test_instructor_guide_states_the_output_limits(output_limit):
    text = _guide("instructor_guide.md")
    assert f"{output_limit.max_lines:,} lines" in text
    assert f"{output_limit.max_chars:,} characters" in text


def test_instructor_guide_states_how_many_cells_the_blank_release_fails():
    release = nbformat.read(REPO_ROOT / "exercises" / "ch01_notation" / "ch01_notation.ipynb", as_version=4)
    tests = [c for c in release.cells
             if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"].get("solution")]
    stated = re.findall(r"VALIDATION FAILED ON (\d+) CELL\(S\)!", _guide("instructor_guide.md"))
    assert stated and {int(n) for n in stated} == {len(tests)}, (stated, len(tests))


def test_instructor_guide_states_the_sandbox_limits():
    from grading.sandbox import GiB, Limits

    limits, text = Limits(), _guide("instructor_guide.md")
    assert f"memory ({limits.memory_bytes // GiB} GiB)" in text
    assert f"processes and threads ({limits.processes})" in text
    assert f"{limits.wall_clock_s / 60:g} minutes for the whole notebook" in text


def _chapters(predicate) -> list[str]:
    """The chapter numbers of the exercises (solutions/chNN_*) whose source notebook satisfies ``predicate``."""
    return [path.parent.name[2:4].lstrip("0") for path in sorted((REPO_ROOT / "solutions").glob("ch*/*.ipynb"))
            if predicate(nbformat.read(path, as_version=4))]


def _listed(numbers: list[str]) -> str:
    return " and ".join([", ".join(numbers[:-1]), numbers[-1]]) if len(numbers) > 1 else numbers[0]


def test_instructor_guide_names_the_exercises_with_written_answers():
    written = _chapters(lambda nb: any(c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("grade")
                                       for c in nb.cells))
    assert f"Chapters {_listed(written)} also have a written answer graded by hand" in _guide("instructor_guide.md")


def test_student_guide_names_the_exercises_that_read_mnist():
    reads = _chapters(lambda nb: any("load_dataset" in c.source or "find_mnist" in c.source or "mnist_file" in c.source
                                     for c in nb.cells if c.cell_type == "code"))
    assert f"Chapters {_listed(reads)} read MNIST" in _guide("student_guide.md")


def test_instructor_guide_states_the_wall_clock_factor():
    from grading.preprocessors import SandboxedExecute

    assert f"stopped after {SandboxedExecute().wall_factor:g} times the limit" in _guide("instructor_guide.md")
