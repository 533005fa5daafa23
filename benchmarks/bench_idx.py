"""Time `course_utils.idx.read_idx` on the four MNIST files and compare it with bare gzip decompression.

    .venv/bin/python benchmarks/bench_idx.py [--mnist-dir DIR] [--repeats N]

For each file, and for all four together, it prints the best of N runs of

- ``read_idx(path)``: header checks, decompression and the array, in one pass;
- ``gzip.decompress(path.read_bytes())``: decompression alone, the floor any gzip reader pays;
- the tutorial's loader: ``struct.unpack`` of the header, then ``np.fromfile`` and ``reshape``, reading a
  file that was decompressed beforehand (untimed), so it pays no decompression at all.

The target is ``read_idx`` within 1.5 times bare decompression over the four files.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import os
import platform
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from course_utils.idx import read_idx

MNIST_FILES = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
]
TARGET_RATIO = 1.5


def load_like_the_tutorial(raw_path: Path) -> np.ndarray:
    """The tutorial's `load_mnist`: unpack the header with struct, read the rest with np.fromfile."""
    with open(raw_path, "rb") as f:
        magic, n = struct.unpack(">II", f.read(8))
        if magic == 2051:  # images: two more sizes, rows and columns
            rows, cols = struct.unpack(">II", f.read(8))
            return np.fromfile(f, dtype=np.uint8).reshape(n, rows * cols)
        return np.fromfile(f, dtype=np.uint8)


def best_time(function: Callable[[], object], repeats: int) -> float:
    """The fastest of `repeats` runs, in seconds, with the garbage collector paused as `timeit` does."""
    best = float("inf")
    for _ in range(repeats):
        gc.disable()
        try:
            start = time.perf_counter()
            function()
            best = min(best, time.perf_counter() - start)
        finally:
            gc.enable()
    return best


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--mnist-dir", type=Path, default=os.environ.get("MNIST_DIR"),
        help="folder with the four MNIST .gz files (default: $MNIST_DIR)",
    )
    parser.add_argument("--repeats", type=int, default=5, help="runs per measurement; the best counts")
    args = parser.parse_args(argv)
    if args.mnist_dir is None:
        parser.error("no MNIST folder: pass --mnist-dir DIR or set the MNIST_DIR environment variable")
    missing = [name for name in MNIST_FILES if not (args.mnist_dir / name).is_file()]
    if missing:
        parser.error(f"{args.mnist_dir} lacks {', '.join(missing)}")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for name in MNIST_FILES:
            path = args.mnist_dir / name
            raw_path = Path(scratch) / name.removesuffix(".gz")
            raw_path.write_bytes(gzip.decompress(path.read_bytes()))  # untimed: the tutorial's gunzip step
            # The three ways must agree before their speeds mean anything.
            ours = read_idx(path)
            assert np.array_equal(ours.reshape(len(ours), -1).squeeze(), load_like_the_tutorial(raw_path))
            times = (
                best_time(lambda: read_idx(path), args.repeats),
                best_time(lambda: gzip.decompress(path.read_bytes()), args.repeats),
                best_time(lambda: load_like_the_tutorial(raw_path), args.repeats),
            )
            rows.append((name, path.stat().st_size, *times))

    total = ("**all four**", sum(r[1] for r in rows), *(sum(r[i] for r in rows) for i in (2, 3, 4)))
    ratio = total[2] / total[3]
    verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print(f"Python {platform.python_version()}, NumPy {np.__version__}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs ({usable} usable); best of {args.repeats} runs; files in {args.mnist_dir}")
    print()
    print("| file | .gz bytes | (a) `read_idx` ms | (b) `gzip.decompress` ms | (c) tutorial, raw file ms "
          "| (a) / (b) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, size, ours, bare, tutorial in [*rows, total]:
        milliseconds = " | ".join(f"{1e3 * t:.2f}" for t in (ours, bare, tutorial))
        print(f"| {name} | {size:,} | {milliseconds} | {ours / bare:.2f}x |")
    print()
    print(f"Target: `read_idx` / bare decompression <= {TARGET_RATIO}x over all four files: "
          f"{ratio:.2f}x, {verdict}")
    print()
    print("(a) reads the .gz file into an array with every header check; (b) only decompresses the .gz "
          "file to bytes; (c) is the tutorial's `struct.unpack` + `np.fromfile` + `reshape` on a file "
          "decompressed beforehand (not timed), so it includes no decompression and is not comparable "
          "with (a) and (b).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
