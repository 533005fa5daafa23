"""Finding, downloading and loading MNIST (course_utils/data.py).

Downloads are tested against a real HTTP server on 127.0.0.1 serving small fixture files: one mirror
that fails, one that serves damaged copies, one that works. No test reaches the internet.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

from course_utils import data
from course_utils.data import (
    DownloadError,
    EmbeddedDataWarning,
    MNISTData,
    MNISTDataError,
    MNISTFile,
    MNISTNotFoundError,
    download_mnist,
    find_mnist_dir,
    load_dataset,
    load_mnist,
    verify_mnist_file,
)
from course_utils.idx import IDXFormatError, read_idx, read_idx_header, write_idx

# ---------------------------------------------------------------- fixtures: a tiny MNIST look-alike


def _idx_bytes(array: np.ndarray, tmp: Path) -> bytes:
    path = write_idx(tmp / "scratch.idx", array, overwrite=True)
    return path.read_bytes()


@pytest.fixture
def tiny_catalogue(tmp_path):
    """Four small IDX payloads with MNIST's names, and the catalogue of their checksums."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, 12, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, 5, dtype=np.uint8),
    }
    payloads = {name: _idx_bytes(array, tmp_path) for name, array in arrays.items()}
    catalogue = {
        name: MNISTFile(
            name.split("-")[0], name.split("-")[1], len(arrays[name]), len(raw),
            hashlib.md5(raw).hexdigest(), hashlib.sha256(raw).hexdigest(),
        )
        for name, raw in payloads.items()
    }
    return arrays, payloads, catalogue


class _Mirrors(http.server.BaseHTTPRequestHandler):
    """Serves ``/<mirror>/<file>``: 'good' serves the gzip files, 'broken' answers 500 to everything,
    'corrupt' serves a damaged copy (flipped bytes) of each file, 'truncated' half of each file."""

    files: dict[str, bytes] = {}
    requests: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self.requests.append(self.path)
        mirror, _, name = self.path.strip("/").partition("/")
        body = self.files.get(name)
        if mirror == "broken" or body is None:
            self.send_error(500 if mirror == "broken" else 404)
            return
        if mirror == "corrupt":
            body = gzip.compress(bytes(b ^ 0x5A for b in gzip.decompress(body)), mtime=0)
        elif mirror == "truncated":
            body = body[: len(body) // 2]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def mirror_server(tiny_catalogue):
    _, payloads, _ = tiny_catalogue
    handler = type("Handler", (_Mirrors,), {"files": {f"{n}.gz": gzip.compress(p, mtime=0) for n, p in payloads.items()}, "requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    yield base, handler
    server.shutdown()
    server.server_close()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


@pytest.fixture
def no_mnist_anywhere(monkeypatch, tmp_path):
    """No MNIST_DIR, an empty cache, and a download that fails as it would offline."""
    monkeypatch.delenv("MNIST_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def offline(destination=None, **kwargs):
        raise DownloadError("could not download train-images-idx3-ubyte.gz from any mirror: offline")

    monkeypatch.setattr(data, "download_mnist", offline)


# ---------------------------------------------------------------- downloading


def test_download_retries_across_mirrors_and_verifies(mirror_server, tiny_catalogue, tmp_path):
    base, handler = mirror_server
    arrays, _, catalogue = tiny_catalogue
    destination = tmp_path / "mnist"
    mirrors = (f"{base}/broken/", f"{base}/corrupt/", f"{base}/truncated/", f"{base}/good/")

    assert download_mnist(destination, mirrors=mirrors, files=catalogue, progress=False) == destination

    for name, array in arrays.items():
        np.testing.assert_array_equal(read_idx(destination / f"{name}.gz"), array)
    assert _leftovers(destination) == []
    # every file was tried on every mirror, in order, before the good one delivered it
    assert [r.split("/")[1] for r in handler.requests[:4]] == ["broken", "corrupt", "truncated", "good"]


def test_download_fetches_only_missing_files(mirror_server, tiny_catalogue, tmp_path):
    base, handler = mirror_server
    _, payloads, catalogue = tiny_catalogue
    destination = tmp_path / "mnist"
    destination.mkdir()
    (destination / "train-labels-idx1-ubyte").write_bytes(payloads["train-labels-idx1-ubyte"])

    download_mnist(destination, mirrors=(f"{base}/good/",), files=catalogue, progress=False)

    assert sorted(r.rsplit("/", 1)[1] for r in handler.requests) == sorted(
        f"{n}.gz" for n in catalogue if n != "train-labels-idx1-ubyte"
    )


def test_failed_download_keeps_good_files_and_leaves_no_partial_file(mirror_server, tiny_catalogue, tmp_path):
    base, _, = mirror_server
    _, payloads, catalogue = tiny_catalogue
    destination = tmp_path / "mnist"
    destination.mkdir()
    good = destination / "train-images-idx3-ubyte.gz"
    good.write_bytes(gzip.compress(payloads["train-images-idx3-ubyte"]))
    before = good.read_bytes()

    with pytest.raises(DownloadError) as excinfo:
        download_mnist(destination, mirrors=(f"{base}/corrupt/", f"{base}/broken/"), files=catalogue, progress=False)

    message = str(excinfo.value)
    assert "train-labels-idx1-ubyte.gz" in message  # the first file still missing
    assert "SHA-256" in message and "500" in message  # what each mirror did
    assert good.read_bytes() == before
    assert sorted(p.name for p in destination.iterdir()) == [good.name]


def test_truncated_download_is_reported_as_damaged(mirror_server, tiny_catalogue, tmp_path):
    base, _ = mirror_server
    *_, catalogue = tiny_catalogue
    destination = tmp_path / "mnist"
    with pytest.raises(DownloadError, match="truncated|damaged"):
        download_mnist(destination, mirrors=(f"{base}/truncated/",), files=catalogue, progress=False)
    assert list(destination.iterdir()) == []


def test_download_shows_a_progress_bar(mirror_server, tiny_catalogue, tmp_path, capsys):
    base, _ = mirror_server
    *_, catalogue = tiny_catalogue
    download_mnist(tmp_path, mirrors=(f"{base}/good/",), files=catalogue, progress=True)
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte.gz" in err and "100%" in err


def test_unreachable_mirror_is_a_download_error(tiny_catalogue, tmp_path):
    *_, catalogue = tiny_catalogue
    # port 9 on loopback: nothing listens, the connection is refused at once
    with pytest.raises(DownloadError, match="127.0.0.1:9"):
        download_mnist(tmp_path, mirrors=("http://127.0.0.1:9/",), files=catalogue, progress=False, timeout=5)


def test_verify_names_the_file_and_both_checksums(tiny_catalogue, tmp_path):
    _, payloads, catalogue = tiny_catalogue
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(payloads["t10k-labels-idx1-ubyte"][:-1] + b"\x09")
    with pytest.raises(data.ChecksumError) as excinfo:
        verify_mnist_file(path, files=catalogue)
    assert str(path) in str(excinfo.value)
    assert catalogue["t10k-labels-idx1-ubyte"].sha256 in str(excinfo.value)

    damaged_gzip = tmp_path / "t10k-labels-idx1-ubyte.gz"
    damaged_gzip.write_bytes(gzip.compress(payloads["t10k-labels-idx1-ubyte"])[:-6])
    with pytest.raises(IDXFormatError, match="gzip"):
        verify_mnist_file(damaged_gzip, files=catalogue)


# ---------------------------------------------------------------- where the data is found


def _write_tiny_mnist(folder: Path, payloads: dict[str, bytes], compress: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, raw in payloads.items():
        if compress:
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)
    return folder


def test_search_order_path_then_env_then_cache(tiny_catalogue, tmp_path, monkeypatch):
    _, payloads, _ = tiny_catalogue
    explicit = _write_tiny_mnist(tmp_path / "explicit", payloads)
    env = _write_tiny_mnist(tmp_path / "env", payloads, compress=False)
    cache = _write_tiny_mnist(tmp_path / "xdg" / "mlp-keras-course" / "mnist", payloads)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(data, "download_mnist", lambda *a, **k: pytest.fail("must not download"))

    monkeypatch.setenv("MNIST_DIR", str(env))
    assert find_mnist_dir(explicit) == explicit
    assert find_mnist_dir() == env
    monkeypatch.delenv("MNIST_DIR")
    assert find_mnist_dir() == cache


def test_empty_cache_triggers_a_download_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.delenv("MNIST_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls = []
    monkeypatch.setattr(
        data, "download_mnist", lambda destination, files: calls.append((destination, sorted(files))) or destination
    )
    assert find_mnist_dir() == tmp_path / "mlp-keras-course" / "mnist"
    assert calls == [(tmp_path / "mlp-keras-course" / "mnist", sorted(data.MNIST_FILES))]
    # asked for one pair, only that pair is fetched
    calls.clear()
    find_mnist_dir(kinds=("t10k",))
    assert calls[0][1] == ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    with pytest.raises(MNISTNotFoundError, match="downloading is switched off"):
        find_mnist_dir(download=False)


def test_wrong_explicit_locations_are_errors_not_skipped(tiny_catalogue, tmp_path, monkeypatch):
    _, payloads, _ = tiny_catalogue
    cache = _write_tiny_mnist(tmp_path / "xdg" / "mlp-keras-course" / "mnist", payloads)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    empty = tmp_path / "empty"
    empty.mkdir()

    with pytest.raises(MNISTNotFoundError) as excinfo:
        find_mnist_dir(empty)
    assert str(empty) in str(excinfo.value) and "t10k-labels-idx1-ubyte" in str(excinfo.value)

    monkeypatch.setenv("MNIST_DIR", str(empty))
    with pytest.raises(MNISTNotFoundError, match="MNIST_DIR"):
        find_mnist_dir()
    assert cache.exists()


def test_nothing_found_says_exactly_what_to_do(no_mnist_anywhere):
    with pytest.raises(MNISTNotFoundError) as excinfo:
        load_mnist()
    message = str(excinfo.value)
    assert "MNIST_DIR" in message and "download_mnist()" in message and "allow_embedded=True" in message
    assert all(mirror in message for mirror in data.MIRRORS)


# ---------------------------------------------------------------- loading


def test_load_mnist_returns_flat_images_and_labels(tiny_catalogue, tmp_path):
    arrays, payloads, _ = tiny_catalogue
    folder = _write_tiny_mnist(tmp_path / "m", payloads)
    for kind, n in (("train", 12), ("t10k", 5)):
        images, labels = load_mnist(folder, kind)
        assert images.shape == (n, 784) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.dtype == np.uint8
        np.testing.assert_array_equal(images, arrays[f"{kind}-images-idx3-ubyte"].reshape(n, 784))
    with pytest.raises(ValueError, match="kind"):
        load_mnist(folder, "test")


def test_load_mnist_reads_only_the_pair_it_is_asked_for(tiny_catalogue, tmp_path, monkeypatch):
    arrays, payloads, _ = tiny_catalogue
    train_only = {name: raw for name, raw in payloads.items() if name.startswith("train")}
    folder = _write_tiny_mnist(tmp_path / "train-only", train_only)
    images, labels = load_mnist(folder, "train")
    np.testing.assert_array_equal(labels, arrays["train-labels-idx1-ubyte"])
    monkeypatch.setenv("MNIST_DIR", str(folder))
    assert load_mnist(kind="train")[0].shape == (12, 784)
    # the missing pair is still a clear error naming both missing files and the folder
    with pytest.raises(MNISTNotFoundError) as excinfo:
        load_mnist(folder, "t10k")
    message = str(excinfo.value)
    assert str(folder) in message
    assert "t10k-images-idx3-ubyte" in message and "t10k-labels-idx1-ubyte" in message
    assert "train-images-idx3-ubyte, " not in message  # present files are not reported missing


def test_load_mnist_refuses_images_and_labels_that_disagree(tiny_catalogue, tmp_path):
    _, payloads, _ = tiny_catalogue
    folder = _write_tiny_mnist(tmp_path / "m", payloads)
    labels = folder / "train-labels-idx1-ubyte.gz"
    labels.unlink()
    write_idx(labels, np.zeros(11, dtype=np.uint8))
    with pytest.raises(MNISTDataError) as excinfo:
        load_mnist(folder, "train")
    assert "12 images" in str(excinfo.value) and "11 labels" in str(excinfo.value)
    assert str(labels) in str(excinfo.value)

    labels.unlink()
    write_idx(labels, np.full(12, 10, dtype=np.uint8))
    with pytest.raises(MNISTDataError, match="digits 0-9"):
        load_mnist(folder, "train")


def test_load_mnist_reports_a_damaged_file_by_name(tiny_catalogue, tmp_path):
    _, payloads, _ = tiny_catalogue
    folder = _write_tiny_mnist(tmp_path / "m", payloads, compress=False)
    damaged = folder / "t10k-images-idx3-ubyte"
    damaged.write_bytes(damaged.read_bytes()[:-100])
    with pytest.raises(IDXFormatError) as excinfo:
        load_mnist(folder, "t10k")
    assert excinfo.value.path == damaged


def test_load_dataset_falls_back_to_embedded_digits_with_a_warning(no_mnist_anywhere):
    with pytest.warns(EmbeddedDataWarning, match="MNIST_DIR") as caught:
        digits = load_dataset()
    assert not digits.is_full_mnist and "embedded" in digits.source
    assert data.EMBEDDED_SOURCE in str(caught[0].message)
    assert digits.X_train.shape == (4000, 784) and digits.X_test.shape == (1000, 784)
    assert digits.X_train.dtype == np.uint8 and digits.X_train.max() == 255
    assert np.bincount(digits.y_train).tolist() == [400] * 10
    assert np.bincount(digits.y_test).tolist() == [100] * 10
    # the constants the book quotes describe this sample
    assert len(digits.y_train) + len(digits.y_test) == 10 * data.EMBEDDED_PER_DIGIT
    assert len(digits.y_test) == 10 * data.EMBEDDED_TEST_PER_DIGIT
    # shuffled, so that a validation split is not one digit only; and the same every time
    assert len(set(digits.y_train[-400:])) == 10
    again = data.load_embedded_digits()
    np.testing.assert_array_equal(again.y_train, digits.y_train)


def test_offline_readers_of_the_files_get_the_embedded_digits_as_idx_files(no_mnist_anywhere, tmp_path):
    with pytest.warns(EmbeddedDataWarning, match="IDX files written from the embedded sample"):
        folder = data.find_mnist_files()
    assert folder == tmp_path / "cache" / "mlp-keras-course" / "embedded-idx"
    embedded = data.load_embedded_digits()
    images, labels = load_mnist(folder, "train")
    np.testing.assert_array_equal(images, embedded.X_train)
    np.testing.assert_array_equal(labels, embedded.y_train)
    assert read_idx_header(data.mnist_file_path("t10k", "images", folder)).shape == (1000, 28, 28)
    with pytest.raises(MNISTNotFoundError):
        data.find_mnist_files(allow_embedded=False)


def test_the_fallback_warning_is_the_same_in_every_execution(no_mnist_anywhere, tmp_path):
    """Notebook outputs must not change between executions: no temporary cell file, no cache path."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        load_dataset()
        load_dataset()  # a second fallback in the same process does not warn again
    assert len(caught) == 1
    shown = warnings.formatwarning(
        caught[0].message, caught[0].category, caught[0].filename, caught[0].lineno, caught[0].line
    )
    assert shown.startswith("course_utils.data:0: EmbeddedDataWarning: Full MNIST was not found")
    assert str(tmp_path) not in shown and "/" not in shown.split("EmbeddedDataWarning")[0]


def test_mnist_file_path_falls_back_to_the_embedded_files_offline(no_mnist_anywhere, tmp_path):
    with pytest.warns(EmbeddedDataWarning):
        path = data.mnist_file_path("t10k", "labels")
    assert path == data.embedded_idx_dir() / "t10k-labels-idx1-ubyte.gz"
    assert read_idx_header(path).shape == (1000,)
    with pytest.raises(MNISTNotFoundError):
        data.mnist_file_path("t10k", "labels", allow_embedded=False)


@pytest.mark.parametrize("full", [True, False])
def test_the_data_note_says_which_data_a_page_was_built_on(full):
    note = data.data_note(full, 4000 if not full else 60_000, 1000 if not full else 10_000)
    first, options, *body, last = note.strip().split("\n")
    assert first.startswith(":::{admonition} ") and last == ":::"
    assert "data-source" in options
    text = " ".join(body)
    if full:
        assert "full MNIST: 60,000 training and 10,000 test images" in text and "warning" not in options
    else:
        assert "warning" in options and "5,000 real MNIST digits" in text
        assert "4,000 training and 1,000 test images" in text
        assert f"<{data.DATA_HELP_LABEL}>" in text  # a link to how to get full MNIST


def test_data_source_key_names_what_a_build_would_load(tiny_catalogue, no_mnist_anywhere, tmp_path, monkeypatch):
    assert data.data_source_key() == "embedded sample"
    _, payloads, _ = tiny_catalogue
    folder = _write_tiny_mnist(tmp_path / "m", payloads)
    monkeypatch.setenv("MNIST_DIR", str(folder))
    assert data.data_source_key() == f"MNIST {folder.resolve()}"
    monkeypatch.setenv("MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(MNISTNotFoundError, match="MNIST_DIR"):  # a wrong MNIST_DIR stops the build
        data.data_source_key()


def test_load_dataset_without_fallback_raises(no_mnist_anywhere):
    with pytest.raises(MNISTNotFoundError):
        load_dataset(allow_embedded=False)


def test_load_dataset_never_falls_back_from_a_wrong_given_location(no_mnist_anywhere, tmp_path, monkeypatch):
    with pytest.raises(MNISTNotFoundError):
        load_dataset(tmp_path)
    monkeypatch.setenv("MNIST_DIR", str(tmp_path))
    with pytest.raises(MNISTNotFoundError, match="MNIST_DIR"):
        load_dataset()


# ---------------------------------------------------------------- the real data

MNIST_DIR = os.environ.get("MNIST_DIR")
needs_mnist = pytest.mark.skipif(not MNIST_DIR, reason="set MNIST_DIR to the folder with the four MNIST files")


@pytest.fixture(scope="module")
def full_mnist() -> MNISTData:
    return load_dataset(MNIST_DIR, allow_embedded=False)


@pytest.mark.mnist
@needs_mnist
def test_real_mnist_matches_the_published_facts(full_mnist):
    assert full_mnist.is_full_mnist
    assert full_mnist.X_train.shape == (60_000, 784) and full_mnist.X_test.shape == (10_000, 784)
    assert full_mnist.y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(full_mnist.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(full_mnist.y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert full_mnist.X_train.mean() == pytest.approx(33.3184, abs=5e-5)


@pytest.mark.mnist
@needs_mnist
@pytest.mark.parametrize("name", list(data.MNIST_FILES))
def test_real_mnist_files_have_the_published_checksums(name):
    path = next(Path(MNIST_DIR).glob(f"{name}*"))
    verify_mnist_file(path)


@pytest.mark.mnist
@needs_mnist
def test_real_mnist_downloads_and_verifies_over_loopback(tmp_path):
    """The whole download path with the real catalogue: the real files served by a local mirror."""
    handler = type(
        "Handler", (_Mirrors,), {"files": {p.name: p.read_bytes() for p in Path(MNIST_DIR).glob("*.gz")}, "requests": []}
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        download_mnist(tmp_path, mirrors=(f"{base}/broken/", f"{base}/good/"), progress=False)
    finally:
        server.shutdown()
        server.server_close()
    images, labels = load_mnist(tmp_path, "t10k")
    assert images.shape == (10_000, 784) and np.bincount(labels)[0] == 980
