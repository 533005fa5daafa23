"""Time the book: execute every notebook of `book/_toc.yml` and print how long each one took.

Run from anywhere with the course's environment:

    MNIST_DIR=/path/to/mnist .venv/bin/python benchmarks/bench_book.py
    .venv/bin/python benchmarks/bench_book.py --notebooks 06_training 07_going_further

Each notebook is copied into a temporary folder and executed there with nbclient (the `python3` kernel,
working directory = the copy's folder, as the book build runs it), so the repository is never
touched. `MNIST_DIR` is passed on from the environment; without it the notebooks look in the cache or
download, or fall back to the embedded sample (the table then says which data the models saw).

Printed: the machine (CPU cores, Python, TensorFlow and Keras versions), one row per notebook with
its execution seconds and the CPU seconds its kernel used, the total, and the training time and test accuracy of chapter 6's tutorial
model and chapter 7's better model, read from the values those chapters glue (`ch6_fit_seconds`,
`ch6_test_accuracy`, `ch7_fit_seconds`, `ch7_test_accuracy`). Timings are printed, never asserted.

One seed says little about a model, so when chapter 7 runs, its better MLP is also trained with the
other seeds of `--seeds` (default: the book's seed and the next two), with the settings chapter 7
glued (`ch7_better_settings`: the width its validation set chose) and chapter 7's own steps:
`set_seeds(seed)`, `build_better_mlp`, `fit` on the raw training pixels less the last
`validation_fraction` of them, the weights of the epoch with the highest validation accuracy, accuracy
on the test set. The book's own seed is read from the chapter, not trained again. `--seeds` with only
the book's seed skips the extra training.

Wall-clock seconds grow when other programs share the cores; CPU seconds much less so. On an otherwise
idle machine with N cores a notebook takes at least its CPU seconds / N, so the CPU column tells what
a contended measurement would have been on a quiet machine, within a factor of its parallelism.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
import warnings
from importlib import metadata
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from course_utils.book import glued_values, toc_docnames
from course_utils.reproducibility import DEFAULT_SEED

REPO_ROOT = Path(__file__).resolve().parents[1]
BOOK = REPO_ROOT / "book"

#: (label, notebook stem, glued fit seconds, glued test accuracy, glued "was it full MNIST")
MODELS = [
    ("ch6 tutorial MLP", "06_training", "ch6_fit_seconds", "ch6_test_accuracy", "ch6_full_mnist"),
    ("ch7 better MLP", "07_going_further", "ch7_fit_seconds", "ch7_test_accuracy", "ch7_full_mnist"),
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


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # terminated, waited-for children: the kernels
    return usage.ru_utime + usage.ru_stime


def execute(notebook: Path, workdir: Path, timeout: int) -> tuple[float, float, dict[str, object]]:
    """Execute a copy of ``notebook`` in ``workdir``; return (seconds, the kernel's CPU seconds, glued values)."""
    copy = workdir / notebook.relative_to(BOOK)
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(notebook, copy)
    nb = nbformat.read(copy, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(copy.parent)}})
    start, cpu_start = time.perf_counter(), _children_cpu_seconds()
    client.execute()  # starts the kernel, runs every cell, shuts the kernel down and reaps it
    seconds, cpu_seconds = time.perf_counter() - start, _children_cpu_seconds() - cpu_start
    nbformat.write(nb, copy)
    return seconds, cpu_seconds, glued_values(copy)


def train_better_mlp(settings: dict, seed: int) -> tuple[float, float, float, bool]:
    """Train chapter 7's better MLP as the chapter does, with ``seed``: on the training images less the
    last ``validation_fraction``, keeping the weights of the epoch with the highest validation accuracy.

    Returns (fit seconds, fit CPU seconds, test accuracy, whether the data was full MNIST).
    """
    import math

    from course_utils.data import load_dataset
    from course_utils.models import BestEpoch, accuracy, build_better_mlp, predict_classes
    from course_utils.preprocessing import one_hot
    from course_utils.reproducibility import set_seeds

    settings = dict(settings)
    epochs, batch_size = settings.pop("epochs"), settings.pop("batch_size")
    validation_fraction = settings.pop("validation_fraction")
    settings.pop("seed", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the embedded-sample warning: the table says which data it was
        data = load_dataset()
    X_train, X_test = data.X_train.astype("float32"), data.X_test.astype("float32")
    n_validation = round(validation_fraction * len(X_train))
    X_fit, y_fit = X_train[:-n_validation], one_hot(data.y_train[:-n_validation])
    X_val, y_val = X_train[-n_validation:], one_hot(data.y_train[-n_validation:])
    updates = epochs * math.ceil(len(X_fit) / batch_size)
    set_seeds(seed)
    model = build_better_mlp(updates, **settings)
    best = BestEpoch("val_accuracy", mode="max")
    start, cpu_start = time.perf_counter(), time.process_time()
    model.fit(X_fit, y_fit, batch_size=batch_size, epochs=epochs, validation_data=(X_val, y_val), verbose=0,
              callbacks=[best])
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    model.set_weights(best.weights)
    return seconds, cpu_seconds, accuracy(data.y_test, predict_classes(model, X_test)), data.is_full_mnist


def seed_table(values: dict[str, object], seeds: list[int]) -> None:
    """Print chapter 7's better MLP's test accuracy for every seed, training the seeds the book did not use."""
    import statistics

    settings = values.get("ch7_better_settings")
    if not isinstance(settings, dict):
        print("(chapter 7 glued no ch7_better_settings: no seed table)")
        return
    book_seed = settings.get("seed")
    print(f"ch7 better MLP over seeds: {', '.join(f'{k} {v}' for k, v in settings.items() if k != 'seed')}")
    print(f"{'seed':>6}  {'fit seconds':>11}  {'CPU seconds':>11}  {'test accuracy':>13}  run")
    accuracies = []
    for seed in seeds:
        if seed == book_seed:
            fit, test_accuracy, run = values.get("ch7_fit_seconds"), values.get("ch7_test_accuracy"), "the book's"
            cpu_text, full = "", values.get("ch7_full_mnist")
        else:
            fit, cpu, test_accuracy, full = train_better_mlp(settings, seed)
            cpu_text, run = f"{cpu:.1f}", "trained here"
        accuracies.append(test_accuracy)
        data = {True: "full MNIST", False: "embedded sample"}.get(full, "?")
        print(f"{seed:>6}  {fit:>11.1f}  {cpu_text:>11}  {test_accuracy:>13.2%}  {run}, {data}", flush=True)
    if len(accuracies) > 1:
        print(f"{'mean':>6}  {'':>11}  {statistics.mean(accuracies):>13.2%}  "
              f"(standard deviation {statistics.stdev(accuracies):.2%}, lowest {min(accuracies):.2%})")


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
                        help="execute only these notebooks (stems such as 06_training)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell (default 600)")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="write the executed copies here instead of a temporary folder")
    parser.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                        default=[DEFAULT_SEED, DEFAULT_SEED + 1, DEFAULT_SEED + 2],
                        help="seeds for chapter 7's better MLP (default: the book's and the next two); "
                             "seeds other than the book's are trained after the notebooks")
    args = parser.parse_args(argv)

    notebooks = select(toc_notebooks(), args.notebooks)
    print("\n".join(machine_lines()), end="\n\n", flush=True)

    rows: list[tuple[str, float, float]] = []
    failed: list[str] = []
    glued: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_book_") as tmp:
        workdir = args.keep or Path(tmp)
        width = max(len(nb.stem) for nb in notebooks)
        print(f"{'notebook':<{width}}  {'seconds':>8}  {'CPU seconds':>11}")
        for notebook in notebooks:
            try:
                seconds, cpu_seconds, values = execute(notebook, workdir, args.timeout)
            except CellExecutionError as error:
                failed.append(notebook.stem)
                reason = str(error).strip().splitlines()[-1]
                print(f"{notebook.stem:<{width}}  {'FAILED':>8}  {reason}", flush=True)
                continue
            rows.append((notebook.stem, seconds, cpu_seconds))
            glued[notebook.stem] = values
            print(f"{notebook.stem:<{width}}  {seconds:>8.1f}  {cpu_seconds:>11.1f}", flush=True)
    total, total_cpu = sum(row[1] for row in rows), sum(row[2] for row in rows)
    print(f"{'total':<{width}}  {total:>8.1f}  {total_cpu:>11.1f}\n")

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
    if "07_going_further" in glued:
        print()
        seed_table(glued["07_going_further"], args.seeds)
    if failed:
        print(f"\nfailed: {', '.join(failed)} (the total leaves them out)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
