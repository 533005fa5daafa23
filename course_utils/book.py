"""Reading the book itself: its table of contents, its repository setting and the numbers its chapters glue.

The course's tests, benchmarks and build tools use these; a reader of the book never needs them. The
repository's address is one setting, ``repository.url`` in ``book/_config.yml``: the Colab links and
the cell that installs ``course_utils`` in Colab are made from it here.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["COLAB_CELL_TAG", "GLUE_PREFIX", "Repository", "colab_install_cell", "glued_outputs", "glued_values",
           "read_repository", "toc_docnames"]

BOOK_CONFIG = Path(__file__).resolve().parents[1] / "book" / "_config.yml"
REQUIREMENTS = Path(__file__).resolve().parents[1] / "requirements.txt"
COLAB = "https://colab.research.google.com"
#: The tag of the Colab install cell: Jupyter Book leaves a cell tagged remove-cell out of the page.
COLAB_CELL_TAG = "remove-cell"

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


# --- the repository and Google Colab ------------------------------------------------------------------


@dataclass(frozen=True)
class Repository:
    """``repository`` in ``book/_config.yml``: where the course lives (a GitHub address, or any git URL)."""

    url: str
    branch: str
    path_to_book: str

    def colab_url(self, path: str) -> str:
        """The address that opens the repository's notebook at ``path`` (from its top folder) in Colab."""
        slug = self.url.rstrip("/").removeprefix("https://github.com/").removesuffix(".git")
        return f"{COLAB}/github/{slug}/blob/{self.branch}/{path}"

    @property
    def pip_requirement(self) -> str:
        """``course_utils`` from this repository, at the branch the notebooks come from."""
        return f"course-utils @ git+{self.url.rstrip('/')}@{self.branch}"


def read_repository(config_path: Path = BOOK_CONFIG) -> Repository:
    """The ``repository`` setting of the book's ``_config.yml``."""
    import yaml

    config = yaml.safe_load(Path(config_path).read_text(encoding="utf-8"))
    setting = config.get("repository") or {}
    if not setting.get("url"):
        raise ValueError(f"{config_path}: repository.url is not set")
    return Repository(setting["url"], setting.get("branch", "main"), setting.get("path_to_book", ""))


def _pinned(package: str, requirements: Path = REQUIREMENTS) -> str:
    """``package==version`` as requirements.txt pins it."""
    for line in Path(requirements).read_text(encoding="utf-8").splitlines():
        if re.match(rf"^{re.escape(package)}==", line.strip()):
            return line.strip()
    raise ValueError(f"{requirements} does not pin {package}")


def colab_install_cell(glues: bool, repository: Repository | None = None) -> str:
    """The first code cell of every notebook: in Colab, install what Colab lacks; elsewhere, nothing.

    Colab has NumPy, TensorFlow, Keras and Matplotlib but not the course's package, which comes from
    the repository at the branch the notebook was opened from (so its helpers match the notebook). A
    chapter that glues numbers into its page (``glues``) also needs myst-nb, at the course's pinned
    version.
    """
    repository = repository or read_repository()
    packages = [repository.pip_requirement] + ([_pinned("myst-nb")] if glues else [])
    quoted = " ".join(f"'{package}'" for package in packages)
    return (
        "# Only in Google Colab: install the course's helper package (and what else Colab lacks) from the\n"
        "# course's repository, at the branch this notebook comes from. Anywhere else this does nothing.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f'    get_ipython().run_line_magic("pip", "install --quiet {quoted}")'
    )
