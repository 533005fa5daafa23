"""Build students' submissions by editing the released notebook, as a student would in JupyterLab."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat

_SOLUTION_MARKER = re.compile(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", re.MULTILINE)
_HIDDEN_TESTS = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS[ \t]*\n?",
                           re.MULTILINE | re.DOTALL)


def read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


def grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def is_answer(cell) -> bool:
    return bool(cell.metadata.get("nbgrader", {}).get("solution"))


def is_test(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta.get("grade")) and not meta.get("solution")


def solution_answers(source: nbformat.NotebookNode) -> dict[str, str]:
    """The instructor's answer for every answer cell, markers removed: what a perfect student types."""
    return {
        grade_id(cell): _SOLUTION_MARKER.sub("", cell.source)
        for cell in source.cells
        if is_answer(cell)
    }


def visible_tests(source: nbformat.NotebookNode) -> dict[str, str]:
    """Each test cell's source as students see it (hidden tests removed)."""
    return {
        grade_id(cell): _HIDDEN_TESTS.sub("", cell.source).rstrip("\n")
        for cell in source.cells
        if is_test(cell)
    }


def fill(release: nbformat.NotebookNode, answers: dict[str, str]) -> nbformat.NotebookNode:
    """A copy of the release with the given answer cells replaced; the others stay as released."""
    notebook = copy.deepcopy(release)
    unknown = set(answers) - {grade_id(c) for c in notebook.cells if is_answer(c)}
    if unknown:
        raise KeyError(f"no answer cells {sorted(unknown)} in the release")
    for cell in notebook.cells:
        if is_answer(cell) and grade_id(cell) in answers:
            cell.source = answers[grade_id(cell)]
    return notebook


def replace_cell_source(notebook: nbformat.NotebookNode, cell_id: str, source: str) -> None:
    """Edit a cell in place, whatever its lock: a JSON editor ignores JupyterLab's read-only flag."""
    cell = next(c for c in notebook.cells if grade_id(c) == cell_id)
    cell.source = source


def delete_cell(notebook: nbformat.NotebookNode, cell_id: str) -> None:
    notebook.cells = [c for c in notebook.cells if grade_id(c) != cell_id]
