"""Marks only for a student's own work: measurements made outside the kernel, no answers by import.

Each submission here is graded for real (`grading.api.grade_submission`: the sandbox, the solution's
reference run, the trusted judge), as an instructor's batch would grade it.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import nbformat
import pytest
from nbgrader_fixtures import submissions as sub

import course_utils
from grading.api import grade_submission

REPO_ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((REPO_ROOT / "solutions").glob("*/*.ipynb"))

pytestmark = [pytest.mark.timeout(900)]


def _release(assignment: str) -> nbformat.NotebookNode:
    return sub.read(REPO_ROOT / "exercises" / assignment / f"{assignment}.ipynb")


def _source(assignment: str) -> Path:
    return REPO_ROOT / "solutions" / assignment / f"{assignment}.ipynb"


def _grade(assignment: str, answers: dict[str, str], student: str):
    submission = sub.fill(_release(assignment), answers)
    return grade_submission(nbformat.writes(submission), _source(assignment), assignment=assignment,
                            student=student)


def _kit_names() -> set[str]:
    """Every public name of every module of the helper package that the student kit ships."""
    names = set()
    for module in pkgutil.iter_modules(course_utils.__path__, "course_utils."):
        names |= {name for name in dir(importlib.import_module(module.name)) if not name.startswith("_")}
    return names


def _answer_names(path: Path) -> dict[str, set[str]]:
    """Answer cell -> the functions and variables it must define."""
    defined = {}
    for cell in sub.read(path).cells:
        if sub.is_answer(cell) and cell.cell_type == "code":
            tree = ast.parse(cell.source)
            defined[sub.grade_id(cell)] = {
                node.name if isinstance(node, ast.FunctionDef) else target.id
                for node in tree.body
                for target in ([node] if isinstance(node, ast.FunctionDef) else getattr(node, "targets", []))
                if isinstance(node, ast.FunctionDef) or isinstance(target, ast.Name)
            }
    return defined


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.stem)
def test_no_answer_has_a_helper_of_its_name_in_the_kit(path):
    clashes = {cell: names & _kit_names() for cell, names in _answer_names(path).items() if names & _kit_names()}
    assert not clashes, f"{path.stem}: course_utils answers these for the student: {clashes}"


# --- answers that are only imports of the course's helpers ---------------------------------------------

# Every helper of the kit, in every answer cell: the most an answer made of imports can be.
IMPORT_EVERYTHING = "".join(f"from {module.name} import *\n"
                            for module in pkgutil.iter_modules(course_utils.__path__, "course_utils.")
                            if module.name not in ("course_utils.book",))


@pytest.mark.parametrize("assignment", ["ch01_notation", "ch03_preprocessing", "ch05_backprop"])
def test_an_answer_made_of_imports_earns_nothing_and_is_flagged(assignment):
    answers = {cell: IMPORT_EVERYTHING for cell in _answer_names(_source(assignment))}
    result = _grade(assignment, answers, "imports_only")
    assert result.total == 0, result.scores
    flagged = {detail.split(":")[0] for detail in result.report.flags.get("course_helper", [])}
    assert flagged == set(answers), result.report.flags


def test_calling_a_helper_inside_an_answer_is_flagged():
    answers = sub.solution_answers(sub.read(_source("ch01_notation")))
    body = answers["n_parameters"].split("\n", 1)[1]  # the docstring and the return, after the def line
    answers["n_parameters"] = ("import course_utils.backprop as bp\n\n\ndef n_parameters(layer_sizes):\n"
                               "    bp.relative_error(np.ones(2), np.ones(2))\n" + body)
    result = _grade("ch01_notation", answers, "calls_helper")
    assert result.total == 9, "a helper call changes no mark: it is flagged for the instructor"
    assert result.report.flags["course_helper"] == [
        "n_parameters: calls bp.relative_error, imports course_utils.backprop"]


# --- a measurement forged inside the kernel -------------------------------------------------------------

# Trains honestly, then zeroes the model (an untrained model's accuracy), makes `predict` return the test
# labels through an alias, and claims a perfect accuracy. Where the hidden test trusted the kernel's
# model.predict, this scored 7 of 7.
FORGED_ACCURACY = '''
import keras as k
import numpy as np

for layer in model.layers:
    layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
_labels = load_dataset().y_test[:1000]
k.Model.predict = lambda self, X, **kwargs: np.eye(10, dtype="float32")[_labels[: len(X)]]
test_accuracy = 1.0
'''


def test_a_forged_accuracy_earns_only_the_honest_parts():
    answers = sub.solution_answers(sub.read(_source("ch06_training")))
    result = _grade("ch06_training", {**answers, "test_accuracy": FORGED_ACCURACY}, "forges_accuracy")
    assert result.scores == {"test_train": (3.0, 3.0), "test_predict_digits": (2.0, 2.0),
                             "test_test_accuracy": (0.0, 2.0)}
    [measured] = result.report.flags["measured_differs"]
    claimed, scored = measured.split("claimed, the recorded model scores ")
    assert claimed == "test_accuracy: 1 " and float(scored) < 0.2, measured
    assert "test_accuracy: rebinds k.Model.predict" in result.report.flags["static_scan"][0]
