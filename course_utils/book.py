"""Reading the book itself: its table of contents and the numbers its chapters glue.

The course's tests and benchmarks use these; a reader of the book never needs them.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

__all__ = ["GLUE_PREFIX", "glued_outputs", "glued_values", "toc_docnames"]

#: `myst_nb.glue(name, value)` emits its value under this MIME-type prefix.
GLUE_PREFIX = "application/papermill.record/"


def toc_docnames(toc_path: Path) -> list[str]:
    """The book's pages in reading order, as paths relative to the book folder without a suffix."""
    from sphinx_external_toc.parsing import parse_toc_yaml

    site_map = parse_toc_yaml(toc_path)

    def walk(docname: str):
        yield docname
        for subtree in site_map[docname].subtrees:
            for child in subtree.items:
                yield from walk(child)

    return list(walk(site_map.root.docname))


def glued_outputs(notebook: Path) -> dict[str, dict]:
    """The glue outputs of an executed notebook by name, with the MIME prefix removed from their data.

    Read from myst-nb's ``<notebook>.glue.json`` when the book build wrote one (it moves the outputs
    there), else from the notebook's own outputs (as ``jupyter nbconvert --execute`` leaves them).
    """
    notebook = Path(notebook)
    store = notebook.with_suffix(".glue.json")
    if store.is_file():
        return json.loads(store.read_text(encoding="utf-8"))
    found = {}
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if name is not None:
                data = {key.removeprefix(GLUE_PREFIX): value for key, value in output["data"].items()}
                found[name] = {**output, "data": data}
    return found


def glued_values(notebook: Path) -> dict[str, object]:
    """Every value glued in an executed notebook, by name: a Python object where its text form is a
    literal (numbers, strings, booleans, tuples), otherwise the text."""
    values: dict[str, object] = {}
    for name, output in glued_outputs(notebook).items():
        text = output.get("data", {}).get("text/plain")
        if text is None:
            continue
        text = "".join(text) if isinstance(text, list) else text
        try:
            values[name] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            values[name] = text
    return values
