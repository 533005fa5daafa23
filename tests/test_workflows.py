"""The GitHub Actions workflows in .github/workflows/, which cannot run here: linted and read.

actionlint (installed in .venv by `make lint-tools`, with ShellCheck and pyflakes for the scripts of
`run:` steps) must report nothing, and the workflows must do what README.md's "Publishing" promises:
build with `make book`, deploy book/_build/html to GitHub Pages from main, rebuild every week from a
clean execution cache.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.y*ml"))
TOOLS = ("actionlint", "shellcheck", "pyflakes")


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    """Paths of the three tools: from the running Python's environment first, then PATH."""
    found = {}
    for name in TOOLS:
        path = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
        if path is None:
            pytest.fail(f"{name} is missing: run `make lint-tools` (it installs actionlint, ShellCheck and pyflakes)")
        found[name] = path
    return found


def actionlint(tools, *files: Path) -> list[dict]:
    """actionlint's findings for the files, as dicts (filepath, line, column, message, kind).

    ShellCheck and pyflakes are passed explicitly: actionlint silently skips the scripts of `run:`
    steps when it cannot find them, and a lint that checks less than it seems to is worse than none.
    """
    result = subprocess.run(
        [tools["actionlint"], "-format", "{{json .}}", "-shellcheck", tools["shellcheck"],
         "-pyflakes", tools["pyflakes"], *map(str, files)],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
    )
    # Exit status 0: no finding; 1: findings (printed as JSON); 2 and 3: bad options or a crash.
    assert result.returncode in (0, 1), f"actionlint failed ({result.returncode}): {result.stderr}{result.stdout}"
    return json.loads(result.stdout or "[]")


def _describe(findings) -> str:
    return "\n".join(f"{f['filepath']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]" for f in findings)


def _load(path: Path) -> dict:
    workflow = yaml.safe_load(path.read_text(encoding="utf-8"))
    # YAML 1.1, which PyYAML reads, takes the key `on` for the boolean true.
    workflow["on"] = workflow.pop(True, workflow.get("on"))
    return workflow


def _steps(workflow):
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def _uses(step, action: str) -> bool:
    return step.get("uses", "").split("@")[0] == action


@pytest.fixture(scope="module")
def workflows() -> dict[str, dict]:
    assert WORKFLOWS, "no workflow in .github/workflows/"
    return {path.name: _load(path) for path in WORKFLOWS}


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_actionlint_finds_nothing(tools, path):
    findings = actionlint(tools, path)
    assert not findings, f"actionlint on {path.relative_to(REPO_ROOT)}:\n{_describe(findings)}"


# Each mistake, put into a copy of the publishing workflow, must be reported with this kind.
BREAKAGES = {
    "misspelled input of an action": (r"(\n\s+)path: book/_build/html", r"\1pth: book/_build/html", "action"),
    "impossible cron schedule": (r'cron: "(\d+) (\d+) \* \* \d"', r'cron: "\1 \2 * * 9"', "events"),
    "reference to a step that does not exist": (r"steps\.mnist\.outputs\.dir", "steps.mnsit.outputs.dir", "expression"),
    "job that needs a job that does not exist": (r"needs: build", "needs: compile", "job-needs"),
    "shell script bug (ShellCheck)": (r'>> "\$GITHUB_OUTPUT"', r">> $GITHUB_OUTPUT", "shellcheck"),
}


@pytest.mark.parametrize("mistake", BREAKAGES, ids=list(BREAKAGES))
def test_actionlint_reports_a_broken_workflow(tools, tmp_path, mistake):
    """The lint above passes only because the workflow is right: a copy with one mistake fails it."""
    pattern, replacement, kind = BREAKAGES[mistake]
    source = REPO_ROOT / ".github" / "workflows" / "book.yml"
    text = source.read_text(encoding="utf-8")
    broken, count = re.subn(pattern, replacement, text, count=1)
    assert count == 1, f"the workflow no longer contains {pattern!r}: update BREAKAGES"
    copy = tmp_path / ".github" / "workflows" / "book.yml"
    copy.parent.mkdir(parents=True)
    copy.write_text(broken, encoding="utf-8")
    kinds = {f["kind"] for f in actionlint(tools, copy)}
    assert kind in kinds, f"actionlint missed a {mistake}: it reported only {sorted(kinds) or 'nothing'}"


def _book_workflow(workflows) -> tuple[str, dict]:
    """The workflow that publishes the book: the one that deploys to GitHub Pages."""
    publishing = [(name, wf) for name, wf in workflows.items()
                  if any(_uses(step, "actions/deploy-pages") for _, step in _steps(wf))]
    assert len(publishing) == 1, f"expected one workflow deploying to GitHub Pages, found {[n for n, _ in publishing]}"
    return publishing[0]


def test_the_book_is_built_with_make_book_and_its_html_uploaded(workflows):
    name, wf = _book_workflow(workflows)
    builds = [job for job, step in _steps(wf) if re.search(r"^\s*make book\s*$", step.get("run", ""), re.M)]
    assert builds, f"{name}: no step runs `make book` (the README's command)"
    uploads = [step for job, step in _steps(wf) if _uses(step, "actions/upload-pages-artifact")]
    assert [s.get("with", {}).get("path") for s in uploads] == ["book/_build/html"], (
        f"{name}: actions/upload-pages-artifact must upload book/_build/html"
    )
    assert any(_uses(step, "actions/configure-pages") for _, step in _steps(wf)), f"{name}: no actions/configure-pages"
    # The data the published numbers come from: full MNIST, fetched by the course's own downloader.
    assert any("download_mnist" in step.get("run", "") for _, step in _steps(wf)), f"{name}: MNIST is not downloaded"


def test_only_main_is_deployed_with_the_permissions_pages_needs(workflows):
    name, wf = _book_workflow(workflows)
    assert wf.get("permissions") == {"contents": "read"}, f"{name}: the workflow's default token must be read-only"
    assert wf.get("concurrency", {}).get("cancel-in-progress") is False, (
        f"{name}: deployments must queue in a concurrency group, never be cancelled half-way"
    )
    (deploy_id, deploy), = [(j, job) for j, job in wf["jobs"].items()
                            if any(_uses(s, "actions/deploy-pages") for s in job.get("steps", []))]
    build_ids = [j for j, step in _steps(wf) if _uses(step, "actions/upload-pages-artifact")]
    needs = deploy.get("needs", [])
    assert set(build_ids) <= set([needs] if isinstance(needs, str) else needs), f"{name}: {deploy_id} must need the build"
    assert deploy.get("permissions") == {"pages": "write", "id-token": "write"}, f"{name}: {deploy_id}'s permissions"
    assert deploy.get("environment", {}).get("name") == "github-pages", f"{name}: {deploy_id} must use github-pages"
    assert "refs/heads/main" in deploy.get("if", ""), f"{name}: {deploy_id} must deploy main only"


def test_a_weekly_rebuild_starts_from_a_clean_execution_cache(workflows):
    name, wf = _book_workflow(workflows)
    triggers = wf["on"]
    assert triggers.get("push", {}).get("branches") == ["main"], f"{name}: must build on pushes to main"
    assert "workflow_dispatch" in triggers, f"{name}: must be runnable by hand"
    crons = [entry["cron"] for entry in triggers.get("schedule", [])]
    # minute hour * * weekday: once a week, on one day.
    weekly = [c for c in crons if re.fullmatch(r"\d{1,2} \d{1,2} \* \* [0-6]", c)]
    assert weekly, f"{name}: no weekly schedule among {crons}"
    # Runners start empty: the execution cache is clean unless the workflow restores book/_build.
    for _, step in _steps(wf):
        if _uses(step, "actions/cache"):
            assert "_build" not in str(step.get("with", {}).get("path")), (
                f"{name}: caching the book's build would let the weekly rebuild reuse old executions"
            )


def test_the_repository_address_is_set_in_one_place(repo_root):
    """repository.url in book/_config.yml is the one setting; no other tracked file repeats the address."""
    config = yaml.safe_load((repo_root / "book" / "_config.yml").read_text(encoding="utf-8"))
    url = config["repository"]["url"].rstrip("/")
    slug = url.removeprefix("https://github.com/")
    tracked = subprocess.run(["git", "ls-files", "-z"], capture_output=True, text=True, cwd=repo_root, check=True)
    repeats = []
    for relative in filter(None, tracked.stdout.split("\0")):
        path = repo_root / relative
        if relative == "book/_config.yml" or not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", errors="ignore")
        if relative.endswith(".ipynb"):  # except the Colab install cell, which book/colab.py makes from the setting
            text = _without_colab_cell(path)
        if slug in text:
            repeats.append(relative)
    assert not repeats, f"the repository address {url} is repeated outside book/_config.yml in: {repeats}"


def _without_colab_cell(path) -> str:
    """A notebook's cells as text, less the Colab install cell where it is exactly what the setting gives."""
    import nbformat

    from course_utils.book import colab_install_cell

    notebook = nbformat.read(path, as_version=4)
    generated = {colab_install_cell(glues) for glues in (True, False)}
    return "\n".join(cell.source for cell in notebook.cells if cell.source not in generated)
