"""Every committed notebook is stored clean (CONTRIBUTING.md, "Notebooks").

Outputs are never committed (they would contain MNIST digits): the book build executes the notebooks
and nbval re-executes the build's copies. These checks read the committed .ipynb files as JSON.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import BOOK, REPO_ROOT, toc_docnames

NOTEBOOK_FOLDERS = ("book", "solutions", "exercises")
CHAPTERS = [name for name in toc_docnames() if name.startswith("chapters/")]

# Metadata a clean notebook may carry; anything else is editor state (widgets, toc, vscode, ...).
NOTEBOOK_METADATA = {"kernelspec", "language_info", "mystnb"}
# nbgrader marks grade/solution/locked cells and locks them with deletable/editable; mystnb holds
# figure captions and alt text; tags drive Jupyter Book (remove-input, hide-output, ...).
CELL_METADATA = {"nbgrader", "mystnb", "tags", "deletable", "editable"}

# A code cell that draws a figure: a course plotting helper or a matplotlib call that draws.
FIGURE_CALL = re.compile(
    r"\b(?:plot_\w+|draw_\w+)\s*\("
    r"|\bplt\.(?:plot|imshow|subplots?|figure|bar|barh|hist|scatter|matshow|show)\s*\("
)
# Absolute paths that only exist on one person's machine.
PERSONAL_PATH = re.compile(r"(?<![\w.])/(?:work|root|home|Users)/|[A-Za-z]:\\\\Users\\\\")


def _committed_notebooks() -> list[Path]:
    found = []
    for folder in NOTEBOOK_FOLDERS:
        for path in sorted((REPO_ROOT / folder).rglob("*.ipynb")):
            parts = path.relative_to(REPO_ROOT).parts
            if "_build" in parts or ".ipynb_checkpoints" in parts:
                continue
            found.append(path)
    return found


NOTEBOOKS = _committed_notebooks()


def _id(path: Path) -> str:
    return str(path.relative_to(REPO_ROOT))


@pytest.fixture(params=NOTEBOOKS, ids=_id)
def notebook(request):
    path = request.param
    return path, json.loads(path.read_text(encoding="utf-8"))


def test_every_chapter_of_the_toc_is_a_notebook():
    missing = [name for name in CHAPTERS if not (BOOK / f"{name}.ipynb").is_file()]
    assert len(CHAPTERS) >= 7, f"_toc.yml lists only {CHAPTERS}"
    assert not missing, f"chapters in _toc.yml with no notebook: {missing}"


def test_every_toc_entry_has_a_source_file():
    missing = [
        name for name in toc_docnames()
        if not any((BOOK / f"{name}{suffix}").is_file() for suffix in (".ipynb", ".md"))
    ]
    assert not missing, f"_toc.yml entries with no .ipynb or .md file: {missing}"


def test_every_book_notebook_is_in_the_toc():
    listed = set(toc_docnames())
    book_notebooks = [p for p in NOTEBOOKS if p.is_relative_to(BOOK)]
    assert book_notebooks, "no notebook found under book/"
    orphans = [_id(p) for p in book_notebooks if str(p.relative_to(BOOK).with_suffix("")) not in listed]
    assert not orphans, f"notebooks under book/ missing from _toc.yml: {orphans}"


def test_no_outputs_or_execution_counts(notebook):
    path, nb = notebook
    dirty = [
        i for i, cell in enumerate(nb["cells"])
        if cell["cell_type"] == "code" and (cell.get("outputs") or cell.get("execution_count") is not None)
    ]
    assert not dirty, f"{_id(path)}: cells {dirty} have outputs or an execution count (clear them)"


def test_kernelspec_is_python3(notebook):
    path, nb = notebook
    assert nb["metadata"].get("kernelspec", {}).get("name") == "python3", (
        f"{_id(path)}: kernelspec must be python3, got {nb['metadata'].get('kernelspec')}"
    )


def test_no_stray_metadata(notebook):
    path, nb = notebook
    problems = [f"notebook metadata '{key}'" for key in sorted(set(nb["metadata"]) - NOTEBOOK_METADATA)]
    for i, cell in enumerate(nb["cells"]):
        problems += [f"cell {i} metadata '{key}'" for key in sorted(set(cell["metadata"]) - CELL_METADATA)]
    assert not problems, f"{_id(path)} carries editor metadata: {', '.join(problems)}"


def test_no_personal_paths(notebook):
    path, nb = notebook
    hits = sorted({m.group(0) for m in PERSONAL_PATH.finditer(json.dumps(nb))})
    assert not hits, f"{_id(path)} contains absolute personal paths: {hits}"


def _figure_cells(nb):
    for i, cell in enumerate(nb["cells"]):
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        tags = set(cell["metadata"].get("tags", []))
        if cell["cell_type"] != "code" or not FIGURE_CALL.search(source):
            continue
        # A figure that is never shown needs no caption: glued for a {glue:figure}, or output removed.
        if "glue(" in source or tags & {"remove-output", "remove-cell"}:
            continue
        yield i, cell


@pytest.mark.parametrize("name", CHAPTERS)
def test_figures_have_caption_and_alt_text(name):
    path = BOOK / f"{name}.ipynb"
    if not path.is_file():
        pytest.fail(f"{_id(path)} is missing")
    nb = json.loads(path.read_text(encoding="utf-8"))
    problems = []
    for i, cell in _figure_cells(nb):
        mystnb = cell["metadata"].get("mystnb", {})
        if not str(mystnb.get("image", {}).get("alt", "")).strip():
            problems.append(f"cell {i}: no mystnb.image.alt")
        if not str(mystnb.get("figure", {}).get("caption", "")).strip():
            problems.append(f"cell {i}: no mystnb.figure.caption")
    assert not problems, f"{_id(path)}: figure cells need alt text and a caption: {'; '.join(problems)}"


# A result typed into a caption or alt text: a percentage, a ratio ("three times higher"), an
# estimate ("about 40", "roughly a thousand") or a count in words ("in the hundreds").
_NUMBER = r"(?:\d[\d,.]*|a|one|two|three|four|five|six|seven|eight|nine|ten|a few|several)"
TYPED_RESULT = re.compile(
    rf"\d\s*%|\bper ?cent|\b{_NUMBER}\s+times\b|\b(?:about|roughly|nearly|almost)\s+{_NUMBER}\b"
    r"|\bhundreds?\b|\bthousands?\b",
    re.IGNORECASE,
)


@pytest.mark.parametrize("name", CHAPTERS)
def test_captions_and_alt_texts_type_no_results(name):
    # Metadata cannot hold a glued number: a result that changes with the data or a rerun would go
    # stale there. Captions and alt texts describe the figure; the glued prose gives the numbers.
    nb = json.loads((BOOK / f"{name}.ipynb").read_text(encoding="utf-8"))
    problems = []
    for i, cell in enumerate(nb["cells"]):
        mystnb = cell["metadata"].get("mystnb", {})
        for where, text in (("caption", mystnb.get("figure", {}).get("caption", "")),
                            ("alt", mystnb.get("image", {}).get("alt", ""))):
            problems += [f"cell {i} {where}: {match.group(0)!r}" for match in TYPED_RESULT.finditer(str(text))]
    assert not problems, f"{name}: typed results in figure metadata: {'; '.join(problems)}"
