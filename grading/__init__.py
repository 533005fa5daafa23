"""Instructor-side grading: run each submission in a sandbox and decide its marks outside the kernel.

Nothing here is for students, and the notebooks never import it. nbgrader stays the interface:
``nbgrader_config.py`` plugs these pieces into ``nbgrader autograde`` and ``generate_feedback``, and
``python -m grading autograde`` grades a whole class in parallel into the same gradebook.

| module | holds |
|---|---|
| `sandbox` | the bubblewrap command, resource limits, the preflight check (`SandboxUnavailableError`) |
| `launcher` | ``python -m grading.launcher``: the kernel command that starts ipykernel inside the sandbox |
| `kernel` | `SandboxedKernelManager`: a jupyter_client kernel manager that uses the launcher over IPC |
| `checks` | the trusted step: compares what test cells recorded with the solution's records |
| `measure` | what the trusted step computes itself: a recorded model run on the judge's own data |
| `scan` | a static scan of answer cells for the report (flags, never marks), course helpers included |
| `report` | the per-submission report of what was caught |
| `preprocessors` | the nbgrader preprocessors that put the above into ``autograde`` and ``generate_feedback`` |
| `api` | `grade_submission`: one submission in, graded notebook, scores and report out |
| `batch` | a whole class at once on Dask workers, the gradebook written by the coordinator alone |
| `__main__` | ``python -m grading autograde``: the command line of `batch` |
"""
