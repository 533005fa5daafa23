"""The commands the guides show: every line of their bash code blocks, by section."""

from __future__ import annotations

import re

from nbgrader_fixtures.course import REPO_ROOT

GUIDES = REPO_ROOT / "book" / "guides"
#: The instructor guide's section whose commands tests/test_batch.py runs (the others: the pipeline tests).
BATCH_SECTION = "Grading a whole class"
#: The section whose commands tests/test_lms.py runs.
LMS_SECTION = "Canvas and Moodle"


def _sections(text: str) -> dict[str, str]:
    """Each ``## `` section's title -> its text, subsections included."""
    parts = re.split(r"^## (.+)$", text, flags=re.MULTILINE)
    return {"": parts[0], **{parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}}


def guide_commands(name: str, only: str | None = None, without: tuple[str, ...] = ()) -> list[str]:
    """The command lines in a guide's bash code blocks (blank lines and comments skipped), of section
    ``only`` or of every section but those ``without``."""
    sections = _sections((GUIDES / name).read_text(encoding="utf-8"))
    if only is not None:
        sections = {only: sections[only]}
    text = "".join(body for title, body in sections.items() if title not in without)
    blocks = re.findall(r"^```(?:bash|console|shell|sh)\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines()
            if line.strip() and not line.strip().startswith("#")]
