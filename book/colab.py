"""Write the Colab install cell at the top of every notebook: the book's chapters and nbgrader's source.

    .venv/bin/python book/colab.py           # write or refresh the cell where it is missing or stale
    .venv/bin/python book/colab.py --check   # only report (exit status 1 if any notebook is stale)

The cell is made from ``repository`` in ``book/_config.yml`` (`course_utils.book.colab_install_cell`), so
after changing the repository's address or branch, run this, then regenerate the release with
``nbgrader generate_assignment "*" --force``. The cell is tagged ``remove-cell``: Jupyter Book leaves it
out of the page; it runs (and does nothing) everywhere but in Colab.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

from course_utils.book import COLAB_CELL_TAG, colab_install_cell, read_repository

REPO_ROOT = Path(__file__).resolve().parents[1]
MARKER = "# Only in Google Colab:"


def notebooks(repo: Path = REPO_ROOT) -> list[Path]:
    """The book's chapters and nbgrader's source notebooks (the release is generated from the latter)."""
    return sorted((repo / "book" / "chapters").glob("*.ipynb")) + sorted((repo / "solutions").glob("*/*.ipynb"))


def expected_cell(notebook: nbformat.NotebookNode, config: Path) -> str:
    glues = any("myst_nb" in cell.source for cell in notebook.cells if cell.cell_type == "code")
    return colab_install_cell(glues, read_repository(config))


#: In nbgrader's source the cell is locked course content, like the setup cell: autograding puts it back as
#: it was, and the grader's scan of students' code passes over it.
NBGRADER_LOCKED = {"grade": False, "grade_id": "colab_install", "locked": True, "schema_version": 3,
                   "solution": False, "task": False}


def expected_metadata(path: Path) -> dict:
    metadata = {"tags": [COLAB_CELL_TAG]}
    if "solutions" in path.parts:
        metadata["nbgrader"] = dict(NBGRADER_LOCKED)
    return metadata


def refresh(path: Path, config: Path, write: bool) -> bool:
    """Whether ``path``'s first code cell is (now, if ``write``) the expected install cell."""
    notebook = nbformat.read(path, as_version=4)
    source = expected_cell(notebook, config)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    current = code[0] if code and code[0].source.startswith(MARKER) else None
    if current is not None and current.source == source and current.metadata == expected_metadata(path):
        return True
    if not write:
        return False
    if current is None:
        first_code = notebook.cells.index(code[0]) if code else len(notebook.cells)
        current = nbformat.v4.new_code_cell(source)
        current.pop("id", None)  # the course's notebooks are nbformat 4.4: no cell IDs
        notebook.cells.insert(first_code, current)
    current.source = source
    current.metadata = expected_metadata(path)
    nbformat.write(notebook, path)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report stale notebooks, change nothing")
    parser.add_argument("--repo", type=Path, default=REPO_ROOT, help="the course's top folder")
    args = parser.parse_args(argv)
    config = args.repo / "book" / "_config.yml"
    stale = [path for path in notebooks(args.repo) if not refresh(path, config, write=not args.check)]
    for path in stale:
        print(f"{path.relative_to(args.repo)}: the Colab install cell is missing or stale: run book/colab.py")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
