"""Time the book: execute every notebook of `book/_toc.yml` and print how long each one took.

Run from anywhere with the course's environment:

    MNIST_DIR=/path/to/mnist .venv/bin/python benchmarks/bench_book.py
    .venv/bin/python benchmarks/bench_book.py --notebooks 05_training 06_going_further

Each notebook is copied into a temporary folder and executed there with nbclient (the `python3` kernel,
working directory = the copy's folder, as the book build runs it), so the repository is never
touched. `MNIST_DIR` is passed on from the environment; without it the notebooks look in the cache or
download, or fall back to the embedded sample (the table then says which data the models saw).

Printed: the machine (CPU cores, Python, TensorFlow and Keras versions), one row per notebook with
its execution seconds, the total, and the training time and test accuracy of chapter 5's tutorial
model and chapter 6's better model, read from the values those chapters glue (`ch5_fit_seconds`,
`ch5_test_accuracy`, `ch6_fit_seconds`, `ch6_test_accuracy`). Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from course_utils.book import glued_values, toc_docnames

REPO_ROOT = Path(__file__).resolve().parents[1]
BOOK = REPO_ROOT / "book"

#: (label, notebook stem, glued fit seconds, glued test accuracy, glued "was it full MNIST")
MODELS = [
    ("ch5 tutorial MLP", "05_training", "ch5_fit_seconds", "ch5_test_accuracy", "ch5_full_mnist"),
    ("ch6 better MLP", "06_going_further", "ch6_fit_seconds", "ch6_test_accuracy", "ch6_full_mnist"),
]


def toc_notebooks(toc_path: Path = BOOK / "_toc.yml") -> list[Path]:
    """The notebooks of the book in reading order (pages that are Markdown files are skipped)."""
    paths = [BOOK / f"{name}.ipynb" for name in toc_docnames(toc_path)]
    return [path for path in paths if path.is_file()]


def select(notebooks: list[Path], wanted: list[str] | None) -> list[Path]:
    """The notebooks whose stem or file name is in ``wanted`` (all when ``wanted`` is empty)."""
    if not wanted:
        return notebooks
    keys = {name.removesuffix(".ipynb").rsplit("/", 1)[-1] for name in wanted}
    chosen = [nb for nb in notebooks if nb.stem in keys]
    unknown = keys - {nb.stem for nb in chosen}
    if unknown:
        known = ", ".join(nb.stem for nb in notebooks)
        raise SystemExit(f"not notebooks of book/_toc.yml: {', '.join(sorted(unknown))} (known: {known})")
    return chosen


def execute(notebook: Path, workdir: Path, timeout: int) -> tuple[float, dict[str, object]]:
    """Execute a copy of ``notebook`` in ``workdir``; return (seconds, glued values)."""
    copy = workdir / notebook.relative_to(BOOK)
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(notebook, copy)
    nb = nbformat.read(copy, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(copy.parent)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    nbformat.write(nb, copy)
    return seconds, glued_values(copy)


def version(*distributions: str) -> str:
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


def machine_lines() -> list[str]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        f"machine     {platform.machine()} {platform.system()} {platform.release()}",
        f"CPU cores   {os.cpu_count()} ({usable} usable by this process)",
        f"Python      {platform.python_version()}",
        f"TensorFlow  {version('tensorflow-cpu', 'tensorflow')}   Keras {version('keras')}",
        f"MNIST_DIR   {os.environ.get('MNIST_DIR', '(not set: the notebooks search the cache or download)')}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", nargs="+", metavar="NAME",
                        help="execute only these notebooks (stems such as 05_training)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell (default 600)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="write the executed copies here instead of a temporary folder")
    args = parser.parse_args(argv)

    notebooks = select(toc_notebooks(), args.notebooks)
    print("\n".join(machine_lines()), end="\n\n", flush=True)

    rows: list[tuple[str, float]] = []
    failed: list[str] = []
    glued: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_book_") as tmp:
        workdir = args.keep or Path(tmp)
        width = max(len(nb.stem) for nb in notebooks)
        print(f"{'notebook':<{width}}  {'seconds':>8}")
        for notebook in notebooks:
            try:
                seconds, values = execute(notebook, workdir, args.timeout)
            except CellExecutionError as error:
                failed.append(notebook.stem)
                reason = str(error).strip().splitlines()[-1]
                print(f"{notebook.stem:<{width}}  {'FAILED':>8}  {reason}", flush=True)
                continue
            rows.append((notebook.stem, seconds))
            glued[notebook.stem] = values
            print(f"{notebook.stem:<{width}}  {seconds:>8.1f}", flush=True)
    total = sum(seconds for _, seconds in rows)
    print(f"{'total':<{width}}  {total:>8.1f}\n")

    model_rows = [model for model in MODELS if model[1] in glued]
    if model_rows:
        print(f"{'model':<18}  {'fit seconds':>11}  {'test accuracy':>13}  data")
        for label, stem, fit_name, accuracy_name, full_name in model_rows:
            values = glued[stem]
            fit = values.get(fit_name)
            accuracy = values.get(accuracy_name)
            fit_text = f"{fit:.1f}" if isinstance(fit, (int, float)) else f"({fit_name}?)"
            accuracy_text = f"{accuracy:.2%}" if isinstance(accuracy, (int, float)) else f"({accuracy_name}?)"
            data = {True: "full MNIST", False: "embedded sample"}.get(values.get(full_name), "?")
            print(f"{label:<18}  {fit_text:>11}  {accuracy_text:>13}  {data}")
    if failed:
        print(f"\nfailed: {', '.join(failed)} (the total leaves them out)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
