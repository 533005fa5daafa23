"""The built book's pages checked for accessibility in headless Chromium, in light and dark mode.

axe-core (bundled in axe-playwright-python) runs on every page of the toc, on the header's menus and
the search dialog opened, and on both sidebars opened in a 320 px window. Its findings of every impact
for every page and colour mode land in test-artifacts/axe/.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from book_pages import open_page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

# Accessibility: axe-core (bundled in axe-playwright-python) with its default rules, i.e. WCAG 2.0-2.2
# levels A and AA plus Deque's best practices. Its AAA rule (color-contrast-enhanced) and its
# experimental rules are off by default and stay off: the book's target is WCAG AA. A finding of these
# impacts fails the test; moderate and minor ones are kept in test-artifacts/axe/ for review.
BLOCKING_IMPACTS = ("critical", "serious")
# The book's html_context sets default_mode "auto": the theme follows the reader's system setting,
# which Playwright emulates. Both modes have their own colours, so both are checked.
COLOR_SCHEMES = ("light", "dark")


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
    # Colours fade in (the theme's CSS transitions): on a busy machine axe could otherwise measure a
    # contrast halfway between the light and the dark theme's.
    page.evaluate("async () => { await Promise.all(document.getAnimations()"
                  ".filter(a => a instanceof CSSTransition).map(a => a.finished.catch(() => null))); }")
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


def test_page_is_accessible(themed_page, base_url, axe_reports, toc_page, color_scheme):
    page, docname = themed_page, toc_page
    response = open_page(page, base_url, docname)
    assert response is not None and response.status == 200, f"{docname}: HTTP {response and response.status}"
    _check_theme(page, color_scheme)
    report = axe_reports / f"{Path(docname).name}-{color_scheme}.json"
    violations = _blocking_violations(page, report)
    assert not violations, _describe(violations, f"{docname} ({color_scheme} mode)")


def test_menus_and_search_dialog_are_accessible(themed_page, base_url, axe_reports, toc_pages, color_scheme):
    """What axe cannot see on a page as loaded, because it is hidden until opened: checked open, on the
    first page (the header is the same on every page)."""
    page, docname = themed_page, toc_pages[0]
    open_page(page, base_url, docname)
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
    open_page(page, base_url, docname)
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
