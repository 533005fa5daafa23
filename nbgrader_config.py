# nbgrader's configuration for the course's exercises (nbgrader 0.9).
# Careful: if this file raises, nbgrader logs "Exception while loading config file" and carries on
# WITHOUT any of it (wrong folders, no limits, NO SANDBOX); tests/test_nbgrader_pipeline.py checks for
# that line, and a missing `grading` package stops every command instead (SystemExit is not caught).
# Run every `nbgrader` command from this folder, with the virtual environment's bin/ on PATH
# (nbgrader runs `alembic` to create the gradebook). The instructor guide lists the commands.
c = get_config()  # noqa: F821  (nbgrader defines get_config when it loads this file)

try:
    from grading.preprocessors import (CheckResults, HideHiddenTests, InspectSubmission, LimitOutputSize,
                                       SandboxedExecute)
except ImportError as error:  # fail closed: without it, autograde would run student code unsandboxed
    raise SystemExit(f"nbgrader_config.py: the course's grading package cannot be imported ({error}). "
                     "Install the course with `make venv` (or `pip install -e .`) and run nbgrader from "
                     "the virtual environment.") from None

c.CourseDirectory.course_id = "mlp-keras"
# The instructor notebooks (solutions and hidden tests) are nbgrader's source ...
c.CourseDirectory.source_directory = "solutions"
# ... and the student release is generated from them into exercises/ (committed, never hand-edited).
c.CourseDirectory.release_directory = "exercises"

# Seconds a single cell may run while validating or autograding. The slowest solution cell takes a
# few seconds; a submission stuck in an infinite loop is interrupted after this and graded as it is.
# When autograding, the limit counts the kernel's CPU time (this many seconds on each core), so that a
# busy machine changes no mark; c.SandboxedExecute.wall_factor (8) times it bounds the wall clock.
c.ExecutePreprocessor.timeout = 30

# A test cell a student deleted is put back before grading (by default its points would be lost
# to the autograder and the cell graded as missing); edited test cells are always restored.
c.OverwriteCells.add_missing_cells = True


# Huge outputs. nbgrader's LimitOutput keeps the first 1,000 lines of a cell's printed output, but a
# single 5 MB line passes that cap: LimitOutputSize (grading/preprocessors.py) also cuts any text
# output to `max_chars` characters and drops any other output larger than `max_bytes`; it replaces
# LimitOutput in autograde's list of steps.
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.converters import Autograde  # noqa: E402
from nbgrader.preprocessors import Execute, GetGrades, LimitOutput  # noqa: E402

# Grading in a sandbox, with marks decided outside it (the instructor guide explains; grading/ has
# the code). Each submission's kernel runs in bubblewrap: no network, the system read-only, nothing
# of the course visible. It talks to nbgrader over IPC sockets, since it has no network.
c.KernelManager.transport = "ipc"
# Per-kernel limits (grading.kernel.Sandbox); the defaults are shown. --Sandbox.enabled=False on the
# command line grades without the sandbox, and says so loudly.
# c.Sandbox.memory_mb = 4096
# c.Sandbox.wall_clock = 600.0
# First of the sanitize steps: the sandbox preflight, then repairs of duplicated cells and edited
# metadata (which would otherwise abort the batch), recorded in reports/<assignment>/<student>.json.
c.Autograde.sanitize_preprocessors = [
    InspectSubmission, *Autograde.class_traits()["sanitize_preprocessors"].default()
]
# Execute in the sandbox, then judge every test cell from the results it recorded (CheckResults).
_autograde_steps = []
for step in Autograde.class_traits()["autograde_preprocessors"].default():
    if step is Execute:
        _autograde_steps += [SandboxedExecute, CheckResults]
    else:
        _autograde_steps.append(LimitOutputSize if step is LimitOutput else step)
c.Autograde.autograde_preprocessors = _autograde_steps
# Feedback shows each test's name, points and message, never the hidden tests (nbgrader #917).
c.GenerateFeedback.preprocessors = [HideHiddenTests, GetGrades, CSSHTMLHeaderPreprocessor]
