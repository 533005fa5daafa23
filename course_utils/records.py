"""Hand results to the grader as plain data: what the exercises' hidden tests call.

A hidden test does not decide a grade inside the notebook, where a submission's own code runs beside
it and could rebind or patch anything the test uses. It calls the function under test on its inputs and
`record`\\ s what came back; grading then compares the records, outside the kernel, with the records
the instructor's solution made on the same inputs. Each record is published as one display output of
type `RECORD_MIME` holding JSON: numbers, strings, booleans, lists and arrays of numbers, nothing that
could pretend to be equal to something else.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["RECORD_MIME", "plain", "record"]

RECORD_MIME = "application/vnd.mlp-keras.record+json"


def plain(value: Any) -> dict[str, Any]:
    """``value`` as tagged JSON data: ``{"bool": …}``, ``{"int": …}``, ``{"float": …}``, ``{"str": …}``,
    ``{"none": True}``, ``{"array": [...], "shape": [...], "dtype": "…"}`` or ``{"list": [...]}``.

    Anything else becomes ``{"unplain": <type name>}``, which never matches a reference.
    """
    if value is None:
        return {"none": True}
    if isinstance(value, (bool, np.bool_)):
        return {"bool": bool(value)}
    if isinstance(value, (int, np.integer)):
        return {"int": int(value)}
    if isinstance(value, (float, np.floating)):
        number = float(value)
        return {"float": number if math.isfinite(number) else repr(number)}
    if isinstance(value, str):
        return {"str": value}
    if isinstance(value, (np.ndarray, list, tuple)):
        try:
            array = np.asarray(value)
        except (ValueError, TypeError):
            array = None
        if array is not None and array.dtype.kind in "biuf":
            data = array.ravel().tolist()
            if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
                data = [x if math.isfinite(x) else repr(x) for x in data]  # JSON has no nan or inf
            return {"array": data, "shape": list(array.shape), "dtype": array.dtype.str}
        if isinstance(value, (list, tuple)):
            return {"list": [plain(item) for item in value]}
    return {"unplain": type(value).__name__}


def record(name: str, value: Any, *, message: str | None = None, rtol: float = 1e-5, atol: float = 1e-8,
           rule: str = "equal", **params: Any) -> None:
    """Publish ``value`` under ``name`` for the grader (in the test cell that is running).

    In the instructor's run, the keywords say how a student's record is judged: numbers and arrays
    within ``rtol``/``atol`` of the solution's (integers, booleans and strings exactly), or another
    ``rule`` with its ``params``; ``message`` is what the student reads when it fails. In a student's
    run only the value is used.
    """
    from IPython.display import display

    payload = {"name": str(name), "value": plain(value), "rtol": rtol, "atol": atol, "rule": rule,
               "params": params, "message": message}
    display({RECORD_MIME: payload}, raw=True)
