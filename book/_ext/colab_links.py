"""A Sphinx role for links that open an exercise in Google Colab: {colab}`ch01_notation`.

The address is made from the book's one repository setting (``repository`` in ``_config.yml``, read by
`course_utils.book.read_repository`), so a fork's book links to the fork's notebooks.
"""

from __future__ import annotations

from pathlib import Path

from docutils import nodes

from course_utils.book import read_repository


def colab_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``{colab}`ASSIGNMENT``` -> a link "open ASSIGNMENT in Colab" to ``exercises/ASSIGNMENT/ASSIGNMENT.ipynb``."""
    app = inliner.document.settings.env.app
    assignment = text.strip()
    repository = read_repository(Path(app.srcdir) / "_config.yml")
    url = repository.colab_url(f"exercises/{assignment}/{assignment}.ipynb")
    link = nodes.reference(rawtext, f"open {assignment} in Colab", refuri=url)
    link["classes"].append("colab-link")
    return [link], []


def setup(app):
    app.add_role("colab", colab_role)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
