"""Reading the book's table of contents and glued values (course_utils/book.py)."""

import json

import nbformat

from course_utils.book import glued_values, toc_docnames


def test_toc_lists_every_page_in_reading_order(repo_root):
    names = toc_docnames(repo_root / "book" / "_toc.yml")
    chapters = [name for name in names if name.startswith("chapters/")]
    assert names[0] == "chapters/00_introduction"
    assert chapters == sorted(chapters) and chapters[0] == "chapters/00_introduction"
    assert [int(name.split("/")[1][:2]) for name in chapters] == list(range(len(chapters)))
    assert names[-2:] == ["guides/student_guide", "guides/instructor_guide"]


def _glue_output(name, text):
    return nbformat.v4.new_output(
        "display_data",
        data={"application/papermill.record/text/plain": text},
        metadata={"scrapbook": {"name": name, "mime_prefix": "application/papermill.record/"}},
    )


def test_glued_values_come_back_as_python_objects(tmp_path):
    cell = nbformat.v4.new_code_cell("glue(...)")
    cell.outputs = [_glue_output("accuracy", "0.9627"), _glue_output("source", "'MNIST'"),
                    _glue_output("shape", "(60000, 784)"), _glue_output("figure", "<Figure size 640x480>")]
    path = tmp_path / "chapter.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)
    assert glued_values(path) == {
        "accuracy": 0.9627, "source": "MNIST", "shape": (60000, 784), "figure": "<Figure size 640x480>"
    }


def test_the_build_s_glue_store_takes_precedence(tmp_path):
    path = tmp_path / "chapter.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), path)  # the build leaves no glue outputs in the copy
    store = {"n_train": {"data": {"text/plain": "60000"}, "metadata": {}}}
    path.with_suffix(".glue.json").write_text(json.dumps(store))
    assert glued_values(path) == {"n_train": 60000}
