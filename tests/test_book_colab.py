"""The built book's ways into Google Colab: a launch button on every chapter, a link for every exercise.

Read from the HTML the build wrote (``make book``); the addresses must be the ones the repository setting
gives (`course_utils.book.read_repository`), and the install cell must not show on the pages.
"""

from __future__ import annotations

import html
import re

import pytest

from course_utils.book import read_repository


def _links(page: str) -> set[str]:
    return {html.unescape(href) for href in re.findall(r'href="([^"]+)"', page)}


@pytest.mark.parametrize("stem", ["01_mlp_notation", "06_training"])
def test_chapter_pages_have_a_colab_button_to_their_notebook(built_html, repo_root, stem):
    page = (built_html / "chapters" / f"{stem}.html").read_text(encoding="utf-8")
    repository = read_repository(repo_root / "book" / "_config.yml")
    assert repository.colab_url(f"{repository.path_to_book}/chapters/{stem}.ipynb") in _links(page)


def test_every_chapter_page_has_a_colab_button(built_html, toc_pages):
    for docname in toc_pages:
        if docname.startswith("chapters/"):
            page = (built_html / f"{docname}.html").read_text(encoding="utf-8")
            assert "colab.research.google.com/github/" in page, f"{docname} has no Colab button"


def test_the_install_cell_is_not_on_the_page(built_html, toc_pages):
    for docname in toc_pages:
        page = (built_html / f"{docname}.html").read_text(encoding="utf-8")
        assert "Only in Google Colab" not in page and "google.colab" not in page, docname


def test_student_guide_links_every_exercise_to_colab(built_html, repo_root):
    page = (built_html / "guides" / "student_guide.html").read_text(encoding="utf-8")
    repository = read_repository(repo_root / "book" / "_config.yml")
    for folder in sorted((repo_root / "exercises").iterdir()):
        url = repository.colab_url(f"exercises/{folder.name}/{folder.name}.ipynb")
        assert url in _links(page), f"the student guide has no Colab link for {folder.name}"
        assert f"open {folder.name} in Colab" in page
