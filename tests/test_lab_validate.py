"""The student's flow in JupyterLab: open an exercise, press nbgrader's Validate, read the dialog.

JupyterLab is started as `make lab` starts it (`jupyter lab --config=jupyter_server_config.py`, from
the folder that holds nbgrader_config.py), but on a free port of 127.0.0.1 with a token, no browser
of its own, and a temporary copy of the course as its root, so nothing in the repository changes.
Debian's Chromium, driven by Playwright, opens the notebooks in it. Validation runs the whole
notebook on the server (a fresh kernel that imports TensorFlow), so its waits are long.

Chapter 1's exercise is used: it needs NumPy only, so it works offline with no MNIST files. A
screenshot of each dialog lands in test-artifacts/screenshots/.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import nbgrader
import pytest
from loopback import free_port
from nbgrader_fixtures import submissions as sub
from nbgrader_fixtures.course import REPO_ROOT, nbgrader_env, notebook_name
from playwright.sync_api import expect

ASSIGNMENT = "ch01_notation"
SERVER_CONFIG = REPO_ROOT / "jupyter_server_config.py"
# The release as students get it; a student's copy with every answer filled in, in the folder the
# student guide suggests; and that copy with a locked test cell cut down in another editor.
BLANK = f"exercises/{ASSIGNMENT}/{notebook_name(ASSIGNMENT)}"
FILLED = f"my-work/{ASSIGNMENT}/{notebook_name(ASSIGNMENT)}"
EDITED = f"my-work/edited-test/{notebook_name(ASSIGNMENT)}"
EDITED_TEST, EDITED_SOURCE = "test_net_input", '"""net_input: shape and values"""\npass'

# The texts of @jupyter/nbgrader's validation dialog (its validate-assignment plugin, 0.9.6). The
# student guide quotes them.
TITLE = "Validation Results"
SUCCESS = "Success! Your notebook passes all the tests."
FAILED_CELL = "The following cell failed:"
CHANGED_CELL = "The source of the following cell has changed, but it should not have!"
STUDENT_GUIDE = REPO_ROOT / "book" / "guides" / "student_guide.md"

SERVER_START_S = 120  # JupyterLab imports every server extension before it answers
PAGE_LOAD_MS = 120_000  # the lab page and a kernel, on two busy cores
VALIDATE_MS = 300_000  # a fresh kernel imports TensorFlow, then every cell runs (each has 30 s)


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    log: Path

    def get(self, path: str) -> bytes:
        request = urllib.request.Request(f"{self.url}/{path}", headers=self.auth)
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def _course_copy(root: Path) -> None:
    """What a student has: nbgrader's config, the release, and their own copies of chapter 1."""
    root.mkdir()
    shutil.copy2(REPO_ROOT / "nbgrader_config.py", root)
    shutil.copytree(REPO_ROOT / "exercises" / ASSIGNMENT, root / "exercises" / ASSIGNMENT,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    release = sub.read(root / BLANK)
    source = sub.read(REPO_ROOT / "solutions" / ASSIGNMENT / notebook_name(ASSIGNMENT))
    # The solution's code typed into the release's answer cells: a full-marks student.
    filled = sub.fill(release, sub.solution_answers(source))
    edited = copy.deepcopy(filled)
    sub.replace_cell_source(edited, EDITED_TEST, EDITED_SOURCE)
    for path, notebook in [(FILLED, filled), (EDITED, edited)]:
        (root / path).parent.mkdir(parents=True)
        nbformat.write(notebook, str(root / path))


def _server_env(home: Path) -> dict[str, str]:
    env = nbgrader_env()  # the venv's bin/ first on PATH, as `make lab` has it
    # An offline student has no MNIST_DIR; chapter 1 needs none.
    env.pop("MNIST_DIR", None)
    # Kernels import this checkout's course_utils.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    # The user's own Jupyter settings, workspaces and IPython profile stay out of the test, and the
    # test writes nothing into them.
    for name, folder in [("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                         ("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTERLAB_SETTINGS_DIR", "settings"),
                         ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"), ("IPYTHONDIR", "ipython")]:
        env[name] = str(home / folder)
    return env


def _wait_until_ready(lab: Lab, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"JupyterLab exited with status {process.returncode}:\n{lab.log_text()}")
        try:
            json.loads(lab.get("api/status"))
            return
        except urllib.error.HTTPError:
            raise  # it answers, wrongly (the token?): no point waiting
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.25)  # not listening yet: poll again
    pytest.fail(f"JupyterLab did not answer /api/status within {SERVER_START_S} s:\n{lab.log_text()}")


def _stop(lab: Lab, process: subprocess.Popen) -> None:
    """Shut down through the API, as File > Shut Down does (kernels included); signals if that fails."""
    if process.poll() is None:
        try:
            request = urllib.request.Request(f"{lab.url}/api/shutdown", method="POST", headers=lab.auth)
            urllib.request.urlopen(request, timeout=10).close()
            process.wait(timeout=30)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError, subprocess.TimeoutExpired):
            pass
    # The server runs in a process group of its own: end it and the kernels it started.
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=30)
            return


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    home = tmp_path_factory.mktemp("lab")
    root = home / "course"
    _course_copy(root)
    port, token = free_port(), secrets.token_hex(16)
    env = _server_env(home)
    lab = Lab(url=f"http://127.0.0.1:{port}", token=token, root=root, log=home / "jupyter.log")
    command = [
        shutil.which("jupyter", path=env["PATH"]), "lab", f"--config={SERVER_CONFIG}",
        f"--notebook-dir={root}", "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
        "--no-browser", f"--IdentityProvider.token={token}",
    ]
    with open(lab.log, "wb") as log:
        # cwd: the Validate handler reads nbgrader_config.py from the server's working directory,
        # which `make lab` makes the course's top folder.
        process = subprocess.Popen(command, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_until_ready(lab, process)
        yield lab
    finally:
        _stop(lab, process)


@pytest.fixture
def page(browser, lab):
    """A page of JupyterLab that may reach 127.0.0.1 only; anything else is blocked and recorded."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    outside: list[str] = []

    def local_only(route):
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", local_only)
    pg = context.new_page()
    pg.set_default_timeout(PAGE_LOAD_MS)
    pg.outside_requests = outside
    yield pg
    context.close()


def _page_config(lab: Lab) -> dict:
    html = lab.get("lab").decode()
    found = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>',
                      html, re.DOTALL)
    assert found, "the lab page has no jupyter-config-data"
    return json.loads(found.group(1))


def _validate(page, lab: Lab, notebook: str, screenshot: Path) -> tuple[str, str]:
    """Open a notebook, press Validate, and return the dialog's title and text (dialog then closed)."""
    # A workspace of its own: JupyterLab would otherwise reopen the notebooks of the previous test
    # (it keeps workspaces on the server), and a hidden panel's toolbar has a Validate button too.
    workspace = screenshot.stem.replace("_", "-")
    page.goto(f"{lab.url}/lab/workspaces/{workspace}/tree/{notebook}?token={lab.token}")
    panel = page.locator(".jp-NotebookPanel")
    panel.locator(".jp-Cell").first.wait_for()
    assert panel.count() == 1, f"{panel.count()} notebooks open, expected {notebook} alone"
    # The notebook's kernel is up: the document is fully loaded, and saving (Validate saves first)
    # works.
    panel.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()

    # nbgrader's button (its validate-assignment plugin); missing if the extension is not enabled.
    button = panel.locator(".jp-Toolbar .validate-button")
    expect(button, "no Validate button in the notebook's toolbar").to_have_text("Validate",
                                                                                timeout=10_000)
    button.click()

    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=VALIDATE_MS)
    page.screenshot(path=str(screenshot))
    title = dialog.locator(".jp-Dialog-header").inner_text().strip()
    text = dialog.locator(".jp-Dialog-body").inner_text().strip()

    dialog.get_by_role("button", name="Ok").click()
    dialog.wait_for(state="detached")
    assert not page.outside_requests, f"JupyterLab tried to reach the internet: {page.outside_requests}"
    assert page.get_by_text("official Jupyter news").count() == 0, "JupyterLab asks about its news feed"
    # The server ran this notebook (the one on screen), not another one.
    assert f"Validating '{lab.root / notebook}'" in lab.log_text(), lab.log_text()
    return title, text


def test_make_lab_uses_the_same_settings(repo_root):
    # What `make lab` would run, without running it: the server config this test module uses.
    plan = subprocess.run(["make", "-n", "-s", "lab"], cwd=repo_root, check=True, text=True,
                          stdout=subprocess.PIPE).stdout
    lab_line = next((line for line in plan.splitlines() if "jupyter lab" in line), plan)
    assert f"--config={SERVER_CONFIG}" in lab_line.split(), lab_line


def test_lab_runs_with_the_course_settings(lab):
    log = lab.log_text()
    assert "Error loading config file" not in log, log
    # nbgrader's server extensions read nbgrader_config.py from the working directory: found there,
    # Validate runs with the course's settings (the per-cell time limit).
    assert "No nbgrader_config.py file found" not in log, log
    config = _page_config(lab)
    # jupyter_server_config.py was applied: no news feed, no update check, no PyPI search.
    assert config["news"] == {"disabled": True}, config["news"]
    assert config["extensionManager"]["name"] == "read-only", config["extensionManager"]
    assert json.loads(lab.get("lab/api/update")) == {"notification": None}
    assert "@jupyterlab/apputils-extension:announcements" in config["disabledExtensions"]
    # nbgrader's Validate button: the lab extension is enabled and its server half answers.
    extensions = {e["name"] for e in config["federated_extensions"]}
    assert "@jupyter/nbgrader" in extensions, sorted(extensions)
    assert "@jupyter/nbgrader:validate-assignment" not in config["disabledExtensions"]
    version = json.loads(lab.get(f"nbgrader_version?version={nbgrader.__version__}"))
    assert version == {"success": True}, version


def test_validate_the_untouched_release_names_every_failing_test(page, lab, screenshots):
    release = sub.read(lab.root / BLANK)
    tests = [cell for cell in release.cells if sub.is_test(cell)]
    assert tests, "the release has no test cells"

    title, text = _validate(page, lab, BLANK, screenshots / "lab_validate_release.png")

    assert title == TITLE, text
    assert SUCCESS not in text
    # One section per failing cell: the cell's code, then its error.
    sections = text.split(FAILED_CELL)[1:]
    assert len(sections) == len(tests), f"expected {len(tests)} failing cells:\n{text}"
    for cell, section in zip(tests, sections):
        first_line = cell.source.splitlines()[0]  # the test's docstring: what it checks
        assert first_line in section, f"{sub.grade_id(cell)} is not named in:\n{section}"
        # The answers are still `raise NotImplementedError()`.
        assert "NotImplementedError" in section, section


def test_validate_the_filled_in_notebook_reports_success(page, lab, screenshots):
    title, text = _validate(page, lab, FILLED, screenshots / "lab_validate_filled_in.png")
    assert (title, text) == (TITLE, SUCCESS)


def test_validate_an_edited_test_cell_is_reported(page, lab, screenshots):
    title, text = _validate(page, lab, EDITED, screenshots / "lab_validate_edited_test.png")
    assert title == TITLE, text
    # An edited test cell outweighs everything else: it alone is reported, as it now reads.
    assert text.count(CHANGED_CELL) == 1, text
    assert EDITED_SOURCE in text, text
    assert SUCCESS not in text and FAILED_CELL not in text, text


def test_student_guide_quotes_the_dialog():
    # The texts the tests above saw in the dialog are the ones the guide tells students to expect.
    guide = " ".join(STUDENT_GUIDE.read_text(encoding="utf-8").split())
    missing = [text for text in (TITLE, SUCCESS, FAILED_CELL, CHANGED_CELL) if text not in guide]
    assert not missing, f"{STUDENT_GUIDE.name} does not quote {missing}"
