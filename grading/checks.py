"""The trusted step: judge each test cell from the plain data it recorded, outside the kernel.

A test cell earns its points only if it raised no error *and* every record the instructor's solution
made in that cell (`course_utils.records.record`) has a matching record from the submission: same name
and, by the solution record's rule, the same value. The solution's records (the *reference*) come from
running the source notebook in the same sandbox. Everything a submission publishes is untrusted: it is
parsed as tagged JSON, checked for shape and size, and compared here, so nothing the submission's code
does inside its kernel (objects equal to anything, a patched NumPy, tests that never ran) can make a
wrong answer match. Tolerances, rules and messages are read from the reference only. A number that comes
from running the student's model is measured here too (`grading.measure`), from the model's recorded
weights, never taken from the kernel.
"""

from __future__ import annotations

import builtins
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from course_utils.records import RECORD_MIME
from grading import measure

#: The most numbers one record may hold; more is not a record of these exercises.
MAX_ELEMENTS = 2_000_000
_MAX_DEPTH = 20
_BUILTIN_ERRORS = {name for name in dir(builtins) if name.endswith(("Error", "Exception", "Interrupt", "Exit"))}
_HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS.*?^[ \t]*### END HIDDEN TESTS[ \t]*$\n?",
                     re.MULTILINE | re.DOTALL)


class InvalidRecord(ValueError):
    """A record that is not well-formed tagged JSON data."""


@dataclass(frozen=True)
class Record:
    name: str
    value: Any  # the decoded value: bool, int, float, str, None, np.ndarray or list of these
    rtol: float = 1e-5
    atol: float = 1e-8
    rule: str = "equal"
    params: dict = field(default_factory=dict)
    message: str | None = None


@dataclass
class Verdict:
    """What the trusted step decided for one test cell."""

    grade_id: str
    title: str
    passed: bool
    reasons: list[str]
    error: str | None = None  # the exception the cell raised (a builtin's name, or "an exception")
    missing: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    unexpected: int = 0  # records the solution did not make
    invalid: int = 0  # outputs of the record type that were not valid records
    measured: list[str] = field(default_factory=list)  # claims the judge's own measurement contradicts

    def as_dict(self) -> dict:
        return dict(self.__dict__)


# --- reading records -----------------------------------------------------------------------------------


def is_test_cell(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _decode(tagged: Any, depth: int = 0) -> Any:
    if depth > _MAX_DEPTH or not isinstance(tagged, dict) or len(tagged) < 1:
        raise InvalidRecord("not a tagged value")
    if set(tagged) == {"bool"} and isinstance(tagged["bool"], bool):
        return tagged["bool"]
    if set(tagged) == {"int"} and type(tagged["int"]) is int:
        return tagged["int"]
    if set(tagged) == {"float"}:
        return _number(tagged["float"])
    if set(tagged) == {"str"} and isinstance(tagged["str"], str):
        return tagged["str"]
    if set(tagged) == {"none"}:
        return None
    if set(tagged) == {"list"} and isinstance(tagged["list"], list) and len(tagged["list"]) <= MAX_ELEMENTS:
        return [_decode(item, depth + 1) for item in tagged["list"]]
    if set(tagged) == {"array", "shape", "dtype"}:
        return _decode_array(tagged)
    raise InvalidRecord(f"unknown tag {sorted(tagged)[:3]}")


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise InvalidRecord("a boolean where a number belongs")
    if isinstance(value, (int, float)):
        return float(value)
    if value in ("nan", "inf", "-inf"):
        return float(value)
    raise InvalidRecord("not a number")


def _decode_array(tagged: dict) -> np.ndarray:
    shape, data, dtype_text = tagged["shape"], tagged["array"], tagged["dtype"]
    if not (isinstance(shape, list) and len(shape) <= 32 and all(type(n) is int and n >= 0 for n in shape)):
        raise InvalidRecord("bad shape")
    if not isinstance(dtype_text, str) or not re.fullmatch(r"[<>|=]?[biuf]\d{1,2}", dtype_text):
        raise InvalidRecord("bad dtype")
    kind = dtype_text.lstrip("<>|=")[0]
    if not isinstance(data, list) or len(data) > MAX_ELEMENTS or len(data) != math.prod(shape):
        raise InvalidRecord("data does not fill the shape")
    if kind == "f":
        values = np.array([_number(x) for x in data], dtype=np.float64)
    elif kind == "b":
        if not all(isinstance(x, bool) for x in data):
            raise InvalidRecord("bad booleans")
        values = np.array(data, dtype=bool)
    else:
        if not all(type(x) is int for x in data):
            raise InvalidRecord("bad integers")
        values = np.array(data, dtype=object if any(abs(x) >= 2**63 for x in data) else np.int64)
    return values.reshape(shape)


def read_records(cell) -> tuple[list[Record], int]:
    """The valid records among a cell's outputs, and how many record outputs were invalid."""
    records, invalid = [], 0
    for output in cell.get("outputs", []):
        payload = output.get("data", {}).get(RECORD_MIME) if output.get("output_type") == "display_data" else None
        if payload is None:
            continue
        try:
            if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
                raise InvalidRecord("no name")
            params = payload.get("params") or {}
            records.append(Record(
                name=payload["name"], value=_decode(payload.get("value")),
                rtol=float(payload.get("rtol", 1e-5)), atol=float(payload.get("atol", 1e-8)),
                rule=str(payload.get("rule", "equal")), params=params if isinstance(params, dict) else {},
                message=payload.get("message") if isinstance(payload.get("message"), str) else None,
            ))
        except (InvalidRecord, TypeError, ValueError, KeyError):
            invalid += 1
    return records, invalid


def strip_records(cell) -> None:
    """Remove record outputs from a cell (they are data for this step, not for readers)."""
    if "outputs" in cell:
        cell["outputs"] = [o for o in cell["outputs"]
                           if not (o.get("output_type") == "display_data" and RECORD_MIME in o.get("data", {}))]


def cell_error(cell) -> str | None:
    """The name of the first error a cell raised (a builtin exception's name, else "an exception")."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            name = str(output.get("ename", ""))
            return name if name in _BUILTIN_ERRORS or name in ("CellTimeoutError", "DeadKernelError") else "an exception"
    return None


def test_title(source: str, fallback: str) -> str:
    """A test cell's name: the first line of its docstring, as the course writes test cells."""
    match = re.match(r'\s*(?:"""|\'\'\')(.*?)(?:"""|\'\'\'|\n)', source)
    return match.group(1).strip() if match and match.group(1).strip() else fallback


def visible_part(source: str) -> str:
    """A test cell's source without its hidden tests (what students see)."""
    return _HIDDEN.sub("", source)


def hidden_lines(source: str, shortest: int = 12) -> list[str]:
    """The distinctive lines of a cell's hidden tests: text that must never reach a student."""
    lines = []
    for block in re.findall(r"### BEGIN HIDDEN TESTS(.*?)### END HIDDEN TESTS", source, re.DOTALL):
        lines += [line.strip() for line in block.splitlines() if len(line.strip()) >= shortest]
    return lines


# --- the reference -------------------------------------------------------------------------------------


class ReferenceError(RuntimeError):
    """The instructor's solution does not pass its own tests, or records nothing to compare with."""


def reference_records(executed_source) -> dict[str, list[Record]]:
    """grade_id -> the records each test cell made when the solution ran; raises `ReferenceError`."""
    reference: dict[str, list[Record]] = {}
    for cell in executed_source.cells:
        if not is_test_cell(cell):
            continue
        records, invalid = read_records(cell)
        error = cell_error(cell)
        if error or invalid or not records:
            problem = f"raised {error}" if error else ("made invalid records" if invalid else "recorded nothing")
            raise ReferenceError(f"the solution's test cell {grade_id(cell)!r} {problem}: fix the source "
                                 "notebook (every test cell's hidden tests record what they check)")
        reference[grade_id(cell)] = records
        verdict = judge(cell, records)
        if not verdict.passed:
            raise ReferenceError(f"the solution fails its own test cell {grade_id(cell)!r}: {verdict.reasons}")
    return reference


# --- judging -------------------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, np.ndarray):
        return "array"
    if isinstance(value, list):
        return "list"
    return "none" if value is None else "str"


def values_match(got: Any, expected: Any, rtol: float, atol: float) -> bool:
    """Does a submission's value equal the solution's? Numbers within tolerance, everything else exactly."""
    kinds = _kind(got), _kind(expected)
    if kinds[1] == "float" and kinds[0] in ("int", "float"):
        return bool(np.isclose(float(got), expected, rtol=rtol, atol=atol, equal_nan=True))
    if kinds[0] != kinds[1]:
        return False
    if kinds[1] == "array":
        if got.shape != expected.shape:
            return False
        if expected.dtype.kind == "f":
            return got.dtype != object and bool(np.allclose(got.astype(np.float64), expected, rtol=rtol,
                                                            atol=atol, equal_nan=True))
        return got.dtype.kind != "f" and bool(np.array_equal(got, expected))
    if kinds[1] == "list":
        return len(got) == len(expected) and all(values_match(g, e, rtol, atol) for g, e in zip(got, expected))
    return got == expected


def _keyed(records: list[Record]) -> dict[tuple[str, int], Record]:
    seen: Counter = Counter()
    keyed = {}
    for rec in records:
        keyed[rec.name, seen[rec.name]] = rec
        seen[rec.name] += 1
    return keyed


RULES = ("equal", "data", "model_accuracy", "model_outputs")


def _model_pair(got: Record | None, expected: Record | None):
    """The submission's and the solution's recorded models, read and of the same architecture, or None."""
    if got is None or expected is None:
        return None
    try:
        mine, theirs = measure.read_model(got.value), measure.read_model(expected.value)
    except measure.UnreadableModel:
        return None
    return (mine, theirs) if measure.architecture(mine) == measure.architecture(theirs) else None


def _model_accuracy(got: Record, expected: Record, mine: dict, reference: dict) -> tuple[bool, str | None]:
    """Rule "model_accuracy": the value is the accuracy of the recorded model ``params["model"]`` on the
    judge's own copy of the data set ``params["images"]``, within ``slack``, and at least ``min``.

    The judge runs the model (`grading.measure`); the kernel's predictions are never used. Returns the
    verdict and, where the claim and the measurement differ, what the judge measured.
    """
    name = expected.params.get("model")
    models = _model_pair(mine.get((name, 0)), reference.get((name, 0)))
    if models is None or _kind(got.value) not in ("float", "int"):
        return False, None
    X, labels = measure.dataset(expected.params)
    predictions = np.argmax(measure.outputs(models[0], X), axis=1)
    accuracy = float(np.mean(predictions == labels))
    claimed = float(got.value)
    agrees = abs(claimed - accuracy) <= float(expected.params.get("slack", 0.0))
    note = None if agrees else f"{expected.name}: {claimed:.4g} claimed, the recorded model scores {accuracy:.4g}"
    return agrees and accuracy >= float(expected.params.get("min", 0.0)), note


def _model_outputs_match(got: Record, expected: Record) -> bool:
    """Rule "model_outputs": the recorded model computes the solution's model's outputs on ``n`` rows of
    inputs that only the judge draws (seed ``params["seed"]``), within the tolerances."""
    models = _model_pair(got, expected)
    if models is None:
        return False
    X = measure.random_inputs(int(expected.params["seed"]), int(expected.params["n"]), models[1][0][0].shape[0])
    return bool(np.allclose(measure.outputs(models[0], X), measure.outputs(models[1], X),
                            rtol=expected.rtol, atol=expected.atol))


def judge(cell, expected: list[Record], title: str | None = None) -> Verdict:
    """Decide one test cell of a submission from its outputs and the solution's records for it."""
    gid = grade_id(cell) or "?"
    got, invalid = read_records(cell)
    mine, reference = _keyed(got), _keyed(expected)
    missing, wrong, messages, measured = [], [], [], []
    for key, ref in reference.items():
        rec = mine.get(key)
        if rec is None:
            missing.append(ref.name)
            continue
        if ref.rule == "data":  # recorded for another record's rule, not judged itself
            continue
        if ref.rule == "model_accuracy":
            ok, note = _model_accuracy(rec, ref, mine, reference)
            if note:
                measured.append(note)
        elif ref.rule == "model_outputs":
            ok = _model_outputs_match(rec, ref)
        else:
            ok = ref.rule == "equal" and values_match(rec.value, ref.value, ref.rtol, ref.atol)
        if not ok:
            wrong.append(ref.name)
            messages.append(ref.message or "a hidden test found a wrong result")
    error = cell_error(cell)
    if missing and not error:
        messages.append("some of the hidden tests did not run")
    reasons = ([f"the test raised {error}" if error != "an exception" else "the test raised an exception"]
               if error else [])
    reasons += list(dict.fromkeys(messages))  # each message once, in order
    return Verdict(grade_id=gid, title=title or gid, passed=not error and not missing and not wrong,
                   reasons=reasons, error=error, missing=missing, wrong=wrong,
                   unexpected=len(set(mine) - set(reference)), invalid=invalid, measured=measured)


def feedback_outputs(verdict: Verdict, points: float) -> list[dict]:
    """What a judged test cell shows: nothing when it passed, else one error naming the test and why.

    Nothing the submission printed or raised in a test cell is kept: a hook of the student's could
    have printed the hidden tests there, and tracebacks quote them.
    """
    if verdict.passed:
        return []
    text = f"{verdict.title}: 0 of {points:g} points. " + "; ".join(verdict.reasons) + "."
    return [{"output_type": "error", "ename": "TestFailed", "evalue": text, "traceback": [text]}]
