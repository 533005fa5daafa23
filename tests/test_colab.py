"""Google Colab: the install cell every notebook starts with, the links, and a Colab-like run.

Colab itself cannot run here, so the last test builds the closest thing this machine allows: a fresh
virtual environment that sees only packages Colab has (NumPy, TensorFlow, Keras, Matplotlib, ...; not
``course_utils``, not myst-nb), a kernel whose start-up imports a stand-in ``google.colab`` module, and a
copy of the repository whose one repository setting points at that copy. Chapter 1 and chapter 1's
exercise (solved) then execute top to bottom in it, the install cell fetching ``course_utils`` from the
copy as Colab would fetch it from GitHub.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import nbformat
import pytest
import yaml
from nbgrader_fixtures import submissions as sub

from course_utils.book import COLAB_CELL_TAG, Repository, colab_install_cell, read_repository

REPO_ROOT = Path(__file__).resolve().parents[1]
#: What Colab has installed that the course uses (with everything they depend on); not course_utils or myst-nb.
COLAB_PACKAGES = ["numpy", "scipy", "matplotlib", "pandas", "scikit-learn", "tensorflow-cpu", "keras", "tqdm",
                  "wrapt", "requests", "ipykernel", "ipython", "PyYAML", "mlxtend", "psutil", "nbformat"]


def _first_code_cell(path: Path) -> nbformat.NotebookNode:
    notebook = nbformat.read(path, as_version=4)
    return next(cell for cell in notebook.cells if cell.cell_type == "code")


def test_every_notebook_starts_with_the_colab_install_cell():
    result = subprocess.run([sys.executable, "book/colab.py", "--check"], cwd=REPO_ROOT, capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for release in sorted((REPO_ROOT / "exercises").glob("*/*.ipynb")):
        source = REPO_ROOT / "solutions" / release.parent.name / release.name
        assert _first_code_cell(release).source == _first_code_cell(source).source, release
        assert _first_code_cell(release).metadata.get("tags") == [COLAB_CELL_TAG]


def test_the_install_cell_follows_the_one_repository_setting(tmp_path):
    config = yaml.safe_load((REPO_ROOT / "book" / "_config.yml").read_text(encoding="utf-8"))
    config["repository"].update(url="https://github.com/someone/fork", branch="autumn-2027")
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    fork = read_repository(tmp_path / "_config.yml")
    cell = colab_install_cell(glues=True, repository=fork)
    assert "'course-utils @ git+https://github.com/someone/fork@autumn-2027'" in cell
    assert "'myst-nb==" in cell and "myst-nb" not in colab_install_cell(glues=False, repository=fork)
    assert fork.colab_url("exercises/ch01_notation/ch01_notation.ipynb") == (
        "https://colab.research.google.com/github/someone/fork/blob/autumn-2027/exercises/ch01_notation/ch01_notation.ipynb")


def test_the_install_cell_pins_what_requirements_pin():
    pinned = next(line for line in (REPO_ROOT / "requirements.txt").read_text().splitlines() if line.startswith("myst-nb=="))
    assert f"'{pinned}'" in colab_install_cell(glues=True)


def test_the_kit_readme_links_every_exercise_to_colab():
    from grading.kit import TOP, kit_files

    readme = kit_files(REPO_ROOT)[f"{TOP}/README.md"].decode()
    repository = read_repository()
    for folder in sorted((REPO_ROOT / "exercises").iterdir()):
        assert repository.colab_url(f"exercises/{folder.name}/{folder.name}.ipynb") in readme


# --- a Colab-like run -----------------------------------------------------------------------------------


def _closure(names: list[str]) -> list[metadata.Distribution]:
    """The distributions ``names`` and every one they require (extras left out), as installed here."""
    from packaging.requirements import Requirement

    found, todo = {}, list(names)
    while todo:
        name = todo.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in found:
            continue
        found[key] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return list(found.values())


def _colab_site(folder: Path) -> Path:
    """A folder of links to the top-level modules of Colab's packages (and their .dist-info)."""
    folder.mkdir(parents=True)
    for dist in _closure(COLAB_PACKAGES):
        assert "course" not in dist.metadata["Name"].lower()
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops - {"__pycache__"}:
            source = Path(dist.locate_file(top))
            if source.exists() and not (folder / top).exists():
                (folder / top).symlink_to(source)
    return folder


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    """A Colab-like kernel ("colab") and a repository copy whose setting points at itself."""
    root = tmp_path_factory.mktemp("colab")
    # The repository as it is (tracked files), committed on main in a copy: what Colab's pip fetches.
    clone = root / "course"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    for relative in filter(None, files.stdout.split("\0")):
        if (REPO_ROOT / relative).is_file():
            (clone / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / relative, clone / relative)
    config_path = clone / "book" / "_config.yml"
    config = config_path.read_text(encoding="utf-8")
    config = config.replace(f"url: {read_repository().url}", f"url: file://{clone}")
    config_path.write_text(config, encoding="utf-8")
    subprocess.run([sys.executable, "book/colab.py", "--repo", str(clone)], cwd=clone, check=True)
    git = ["git", "-c", "user.name=course", "-c", "user.email=course@localhost"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=clone, check=True)
    subprocess.run([*git, "add", "-A"], cwd=clone, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "the course"], cwd=clone, check=True)

    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    # Colab's pip is current; the one a new venv gets with Python 3.11 cannot read a git+file requirement.
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"pip=={metadata.version('pip')}"], check=True)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    stub = root / "stub"
    (stub / "google" / "colab").mkdir(parents=True)
    (stub / "google" / "colab" / "__init__.py").write_text('"""A stand-in for Colab\'s google.colab module."""\n')
    (site / "colab_packages.pth").write_text(f"{_colab_site(root / 'site')}\n{stub}\n")
    ipython_dir = root / "ipython"
    (ipython_dir / "profile_default" / "startup").mkdir(parents=True)
    (ipython_dir / "profile_default" / "startup" / "00-colab.py").write_text("import google.colab\n")
    kernels = root / "jupyter" / "kernels" / "colab"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Colab-like", "language": "python",
        "env": {"IPYTHONDIR": str(ipython_dir), "PYTHONNOUSERSITE": "1"}}))
    return {"clone": clone, "python": python, "jupyter_path": root / "jupyter", "work": root / "work"}


def _execute(colab, notebook: nbformat.NotebookNode, name: str, monkeypatch) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    work = colab["work"] / name
    work.mkdir(parents=True)
    monkeypatch.setenv("JUPYTER_PATH", str(colab["jupyter_path"]))
    NotebookClient(notebook, kernel_name="colab", timeout=600, resources={"metadata": {"path": str(work)}}).execute()
    return notebook


def test_colab_like_environment_lacks_the_course_package(colab):
    probe = subprocess.run([str(colab["python"]), "-c", "import numpy, keras, matplotlib; import course_utils"],
                           capture_output=True, text=True, cwd=colab["work"].parent, check=False)
    assert "No module named 'course_utils'" in probe.stderr


def test_a_chapter_and_an_exercise_run_in_a_colab_like_environment(colab, monkeypatch):
    clone = colab["clone"]
    chapter = _execute(colab, nbformat.read(clone / "book/chapters/01_mlp_notation.ipynb", as_version=4),
                       "chapter", monkeypatch)
    assert chapter.cells[[c.cell_type for c in chapter.cells].index("code")].source.startswith("# Only in Google Colab")
    shown = subprocess.run([str(colab["python"]), "-m", "pip", "show", "-f", "course-utils"], capture_output=True,
                           text=True, check=True).stdout
    assert "Location: " + str(colab["python"].parents[1]) in shown, "course_utils was installed into the Colab venv"

    subprocess.run(["nbgrader", "generate_assignment", "ch01_notation", "--force"], cwd=clone, check=True,
                   capture_output=True, env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    release = sub.read(clone / "exercises/ch01_notation/ch01_notation.ipynb")
    solved = sub.fill(release, sub.solution_answers(sub.read(clone / "solutions/ch01_notation/ch01_notation.ipynb")))
    graded = _execute(colab, solved, "exercise", monkeypatch)
    errors = [o for c in graded.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
