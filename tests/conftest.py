"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from course_utils import book

REPO_ROOT = Path(__file__).resolve().parents[1]
BOOK = REPO_ROOT / "book"

# Debian's Chromium, installed by `make browser`. Never `playwright install`: it downloads a browser,
# which fails offline.
CHROMIUM = Path("/usr/bin/chromium")
# Flags checked on this kind of machine (shared/STACK_NOTES.md); Playwright adds --headless and a
# fresh --user-data-dir itself. The background-networking ones stop Chromium phoning home offline.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# `make test` passes --nbval for the book's executed notebooks; a notebook kept here as test data
# (an nbgrader submission, say) is read by the tests, never run by nbval.
collect_ignore_glob = ["**/*.ipynb"]


def toc_docnames(toc_path: Path = BOOK / "_toc.yml") -> list[str]:
    """The book's pages in reading order, as paths relative to `book/` without a suffix."""
    return book.toc_docnames(toc_path)


# --- nbval and myst-nb's glue -------------------------------------------------------------------
# `glue(name, value, display=False)` emits an output under "application/papermill.record/<mime>".
# The book build moves those outputs out of the executed notebook into <notebook>.glue.json, so
# nbval's reference cells lack them. nbval skips them in its own comparison (below), and this
# file compares every re-executed glued value with the build's .glue.json instead.
GLUE_PREFIX = book.GLUE_PREFIX
# The build's glued values of each executed notebook, read once per session.
_built_glue = cache(book.glued_outputs)


class _SkipGlue(tuple):
    def __contains__(self, key):
        return str(key).startswith(GLUE_PREFIX) or tuple.__contains__(self, key)


def _check_glue(item):
    """After nbval ran a cell: its glued values must equal the build's (unless nbval ignores it)."""
    if not item.options.get("check") or item.cell.execution_count is None:
        return
    built = _built_glue(item.path)
    for output in item.test_outputs or []:
        name = output.get("metadata", {}).get("scrapbook", {}).get("name")
        for mime, value in output.get("data", {}).items() if name else ():
            mime = mime.removeprefix(GLUE_PREFIX)
            if mime.startswith("image/"):
                continue
            expected = built.get(name, {}).get("data", {}).get(mime)
            assert expected is not None and item.sanitize(value) == item.sanitize(expected), (
                f"glued {name!r} ({mime}) differs from the book build's: {value!r} != {expected!r}"
            )


# `make test` runs the suite on one pytest-xdist worker per core, each test file (and each notebook)
# whole on one worker (--dist loadfile, in this order: --no-loadscope-reorder). The files that take
# longest go first, so that no worker is left with a long file at the end while the other idles.
SLOWEST_FIRST = [
    "tests/test_nbgrader_pipeline.py",
    "book/_build/jupyter_execute/chapters/07_going_further.ipynb",
    "tests/test_batch.py",
    "tests/test_own_work.py",
    "tests/test_lms.py",
    "tests/test_colab.py",
    "book/_build/jupyter_execute/chapters/06_training.ipynb",
    "book/_build/jupyter_execute/chapters/12_comparisons.ipynb",
    "book/_build/jupyter_execute/chapters/10_regularisation.ipynb",
    "book/_build/jupyter_execute/chapters/11_practice.ipynb",
    "book/_build/jupyter_execute/chapters/09_optimisers.ipynb",
    "book/_build/jupyter_execute/chapters/08_autodiff.ipynb",
    "tests/test_book_accessibility.py",
    "tests/test_book_browser.py",
    "tests/test_reproducibility.py",
    "tests/test_lab_validate.py",
]


def _slowness_rank(item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return SLOWEST_FIRST.index(path) if path in SLOWEST_FIRST else len(SLOWEST_FIRST)


def pytest_collection_modifyitems(items):
    # A session-wide hook: it also sees the nbval items outside tests/, which per-item hooks of
    # this conftest would not.
    items.sort(key=_slowness_rank)  # stable: each file keeps its own order
    for item in items:
        if type(item).__name__ != "IPyNbCell":
            continue
        if not isinstance(item.parent.skip_compare, _SkipGlue):
            item.parent.skip_compare = _SkipGlue(item.parent.skip_compare)

        def runtest(item=item, nbval_runtest=item.runtest):
            nbval_runtest()
            _check_glue(item)

        item.runtest = runtest


def pytest_generate_tests(metafunc):
    # `toc_page` runs a test once for every page of the book, in reading order.
    if "toc_page" in metafunc.fixturenames:
        metafunc.parametrize("toc_page", toc_docnames())


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def toc_pages() -> list[str]:
    return toc_docnames()


@pytest.fixture(scope="session")
def built_html() -> Path:
    html = BOOK / "_build" / "html"
    if not (html / "index.html").is_file():
        pytest.fail(f"{html} has no built book: run `make book` first")
    return html


@pytest.fixture(scope="module")
def base_url(built_html):
    """The built book, served on a free port of 127.0.0.1."""
    from book_pages import serve

    with serve(built_html) as url:
        yield url


@pytest.fixture(scope="session")
def executed_notebooks() -> list[Path]:
    """The notebooks as the book build executed them (outputs included)."""
    notebooks = sorted((BOOK / "_build" / "jupyter_execute").rglob("*.ipynb"))
    if not notebooks:
        pytest.fail("book/_build/jupyter_execute holds no executed notebook: run `make book` first")
    return notebooks


# --- the browser tests (test_book_browser.py, test_book_accessibility.py, test_lab_validate.py) ---


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven by Playwright, one per test module."""
    # Imported here: only the browser tests need Playwright.
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make browser` (Debian's chromium package)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where the browser tests save what they saw (gitignored), for a person to look at."""
    folder = REPO_ROOT / "test-artifacts" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# --- grading on a busy machine (test_nbgrader_pipeline.py, test_batch.py) ---


# Spins only while it holds the lock: with the grading modules on two pytest workers at once, one core
# is busy, not two (the second hog sleeps on the lock until the first is stopped).
CPU_HOG = ("import fcntl, sys\nlock = open(sys.argv[1], 'w')\nfcntl.flock(lock, fcntl.LOCK_EX)\n"
           "while True:\n    pass\n")


@pytest.fixture(scope="module")
def one_core_busy(tmp_path_factory):
    """With COURSE_TESTS_BUSY_CORE=1, another process keeps one core busy while a module grades: the marks
    must not change. Off by default: on two cores it makes the whole suite a third slower, and
    tests/test_grading.py proves the point on every run with a kernel pinned to a core that three busy
    processes share."""
    if os.environ.get("COURSE_TESTS_BUSY_CORE") != "1":
        yield None
        return
    lock = tmp_path_factory.getbasetemp().parent / "one-core-busy.lock"  # shared by the pytest workers
    # in a session of its own, as the kernels are: Linux shares the cores between sessions first
    hog = subprocess.Popen([sys.executable, "-c", CPU_HOG, str(lock)], start_new_session=True)
    try:
        yield hog
    finally:
        hog.kill()
        hog.wait()
