"""Tests for course_utils.idx: round trips, exact bytes, malformed files, safe writing, real MNIST."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from course_utils import idx
from course_utils.idx import IDX_TYPE_CODES, IDXFormatError, read_idx, read_idx_header, write_idx

IDX_DTYPES = [np.dtype(name) for name in ("u1", "i1", "i2", "i4", "f4", "f8")]
SHAPES = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)
# Hypothesis runs many examples per test, so each example gets its own folder from the session factory.
HYPOTHESIS_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _bits(array: np.ndarray) -> np.ndarray:
    """The array's elements as unsigned integers of the same width: compares NaN payloads exactly."""
    native = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
    return native.view(f"u{array.dtype.itemsize}")


def _header(code: int, *shape: int) -> bytes:
    return struct.pack(f">BBBB{len(shape)}I", 0, 0, code, len(shape), *shape)


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _assert_format_error(path: Path, *fragments: str) -> IDXFormatError:
    with pytest.raises(IDXFormatError) as caught:
        read_idx(path)
    error = caught.value
    assert error.path == path
    assert str(path) in str(error)
    for fragment in fragments:
        assert fragment in error.problem
    return error


@st.composite
def idx_arrays(draw) -> np.ndarray:
    """An array of any IDX type and shape, in either byte order and any of several memory layouts."""
    dtype = draw(st.sampled_from(IDX_DTYPES)).newbyteorder(draw(st.sampled_from("<>")))
    shape = draw(SHAPES)
    layout = draw(st.sampled_from(["C", "F", "reversed", "strided"]))
    if layout == "strided" and shape:
        doubled = (2 * shape[0],) + shape[1:]
        return draw(hnp.arrays(dtype, doubled))[::2]
    array = draw(hnp.arrays(dtype, shape))
    if layout == "F":
        return np.asfortranarray(array)
    if layout == "reversed" and shape:
        return array[..., ::-1]
    return array


# --- round trips -----------------------------------------------------------------------------------


@HYPOTHESIS_SETTINGS
@given(array=idx_arrays(), compress=st.booleans())
def test_round_trip_keeps_dtype_shape_and_bits(tmp_path_factory, array, compress):
    folder = tmp_path_factory.mktemp("round_trip")
    path = write_idx(folder / ("a.idx.gz" if compress else "a.idx"), array)

    back = read_idx(path)

    assert back.dtype == array.dtype.newbyteorder("=")
    assert back.dtype.isnative
    assert back.shape == array.shape
    assert np.array_equal(_bits(back), _bits(array))
    if array.dtype.kind == "f":
        assert np.array_equal(back, array, equal_nan=True)
    assert back.flags.writeable and back.flags.c_contiguous
    assert path.read_bytes().startswith(b"\x1f\x8b") == compress
    assert _names(folder) == [path.name]


@pytest.mark.parametrize("dtype", IDX_DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (0, 2**31), (2, 3, 4, 5)], ids=str)
def test_round_trip_of_edge_shapes(tmp_path, dtype, shape):
    array = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)
    back = read_idx(write_idx(tmp_path / "edge.idx.gz", array))
    assert back.dtype == dtype and back.shape == shape
    assert np.array_equal(back, array)


def test_float_specials_survive_bit_for_bit(tmp_path):
    signalling_nan = np.array([0x7FA00000], dtype=np.uint32).view(np.float32)[0]
    values = [np.nan, -np.nan, np.inf, -np.inf, -0.0, 1e-45, np.finfo(np.float32).max, signalling_nan]
    array = np.array(values, dtype=">f4")
    back = read_idx(write_idx(tmp_path / "specials.idx", array))
    assert np.array_equal(_bits(back), _bits(array))


def test_result_is_independent_and_writable(tmp_path):
    path = write_idx(tmp_path / "w.idx", np.arange(4, dtype=np.int32))
    first = read_idx(path)
    first[:] = -1
    assert np.array_equal(read_idx(path), np.arange(4, dtype=np.int32))


# --- exact bytes -----------------------------------------------------------------------------------


def test_exact_bytes_of_a_uint8_3d_array(tmp_path):
    path = write_idx(tmp_path / "tiny.idx", np.arange(6, dtype=np.uint8).reshape(1, 2, 3))
    expected = (
        b"\x00\x00\x08\x03"  # magic 0x00000803: uint8, three dimensions
        b"\x00\x00\x00\x01" b"\x00\x00\x00\x02" b"\x00\x00\x00\x03"
        b"\x00\x01\x02\x03\x04\x05"
    )
    assert path.read_bytes() == expected


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.array([1, -2], dtype="<i2"), b"\x00\x00\x0b\x01\x00\x00\x00\x02\x00\x01\xff\xfe"),
        (np.array([-1], dtype=np.int8), b"\x00\x00\x09\x01\x00\x00\x00\x01\xff"),
        (np.array(258, dtype=np.int32), b"\x00\x00\x0c\x00\x00\x00\x01\x02"),
        (np.array([1.0], dtype=np.float32), b"\x00\x00\x0d\x01\x00\x00\x00\x01\x3f\x80\x00\x00"),
        (np.array([-2.0], dtype=np.float64), b"\x00\x00\x0e\x01\x00\x00\x00\x01\xc0" + bytes(7)),
    ],
    ids=["int16", "int8", "int32-0d", "float32", "float64"],
)
def test_exact_bytes_are_big_endian(tmp_path, array, expected):
    assert write_idx(tmp_path / "x.idx", array).read_bytes() == expected


def test_gzip_file_holds_the_same_bytes_and_is_reproducible(tmp_path):
    array = np.arange(100, dtype=np.int16).reshape(10, 10)
    raw = write_idx(tmp_path / "a.idx", array).read_bytes()
    first = write_idx(tmp_path / "a.idx.gz", array).read_bytes()
    second = write_idx(tmp_path / "b.idx.gz", array).read_bytes()
    assert gzip.decompress(first) == raw
    assert first == second  # no timestamp or file name in the gzip header


@pytest.mark.parametrize(("shape", "magic"), [((2, 28, 28), 2051), ((2,), 2049)])
def test_mnist_style_magic_numbers(tmp_path, shape, magic):
    path = write_idx(tmp_path / "m.idx", np.zeros(shape, dtype=np.uint8))
    assert struct.unpack(">I", path.read_bytes()[:4]) == (magic,)
    assert read_idx_header(path).magic_number == magic


def test_type_codes_table():
    assert {code: dt.str for code, dt in IDX_TYPE_CODES.items()} == {
        0x08: "|u1", 0x09: "|i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8",
    }


# --- malformed files -------------------------------------------------------------------------------

MALFORMED = {
    "empty": (b"", ["0 bytes", "magic"]),
    "three-bytes": (b"\x00\x00\x08", ["3 bytes", "magic"]),
    "bad-magic": (b"\x01\x02\x08\x01" + bytes(5), ["bad magic number 0x01020801"]),
    "bad-second-byte": (b"\x00\x01\x08\x01" + bytes(5), ["bad magic number 0x00010801"]),
    "unknown-type": (b"\x00\x00\x0a\x01" + bytes(5), ["unknown element type code 0x0A"]),
    "short-header": (b"\x00\x00\x08\x03" + bytes(8), ["3 dimensions", "after 8"]),
    "short-data": (_header(0x08, 2, 3) + bytes(4), ["6 items", "(2, 3)", "6 bytes", "holds 4 bytes"]),
    "short-int16": (_header(0x0B, 3) + bytes(5), ["3 items", "6 bytes", "holds 5 bytes (2 items)"]),
    "trailing": (_header(0x08, 2) + bytes(5), ["3 trailing bytes", "2 items"]),
}


@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("case", MALFORMED, ids=str)
def test_malformed_file_names_file_and_problem(tmp_path, case, compressed):
    content, fragments = MALFORMED[case]
    path = tmp_path / "bad.idx"
    path.write_bytes(gzip.compress(content) if compressed else content)
    _assert_format_error(path, *fragments)


@pytest.fixture
def gz_file(tmp_path) -> Path:
    # Random bytes do not compress, so the deflate stream is long and a cut lands in its middle.
    array = np.random.default_rng(0).integers(0, 256, size=(40, 50), dtype=np.uint8)
    return write_idx(tmp_path / "valid.idx.gz", array)


@pytest.mark.parametrize("keep", [10, 100, 1000, -8, -1])
def test_truncated_gzip(gz_file, keep):
    gz_file.write_bytes(gz_file.read_bytes()[:keep])
    _assert_format_error(gz_file, "truncated")


@pytest.mark.parametrize(
    ("offset", "fragment"),
    [(-8, "incorrect data check"), (-4, "incorrect length check")],
    ids=["crc", "isize"],
)
def test_corrupted_gzip_trailer(gz_file, offset, fragment):
    blob = bytearray(gz_file.read_bytes())
    blob[offset] ^= 0xFF
    gz_file.write_bytes(bytes(blob))
    _assert_format_error(gz_file, "damaged", fragment)


def test_corrupted_stored_block_fails_the_crc(tmp_path):
    content = _header(0x08, 64) + bytes(range(64))
    blob = bytearray(gzip.compress(content, compresslevel=0, mtime=0))
    blob[-20] ^= 0x01  # a data byte of the stored (uncompressed) block
    path = tmp_path / "stored.idx.gz"
    path.write_bytes(bytes(blob))
    _assert_format_error(path, "damaged", "incorrect data check")


@pytest.mark.parametrize("position", [10, 11, 20, 50, 400])
def test_corrupted_deflate_stream(gz_file, position):
    blob = bytearray(gz_file.read_bytes())
    blob[position] ^= 0xFF
    gz_file.write_bytes(bytes(blob))
    _assert_format_error(gz_file)


@pytest.mark.parametrize("tail", [b"garbage", b"\x00", b"\x1f", b"\x1f\x8bnot gzip"], ids=repr)
def test_garbage_after_gzip_stream(gz_file, tail):
    gz_file.write_bytes(gz_file.read_bytes() + tail)
    _assert_format_error(gz_file, "damaged")


@pytest.mark.parametrize(
    ("tail", "fragment"),
    [(b"garbage", "7 bytes after the end of the gzip stream"), (gzip.compress(b"abc"), "3 trailing bytes")],
    ids=["garbage", "second-member"],
)
def test_what_follows_the_data_is_counted_once(gz_file, tail, fragment):
    gz_file.write_bytes(gz_file.read_bytes() + tail)
    _assert_format_error(gz_file, fragment)


def test_second_gzip_member_with_extra_data_is_trailing(gz_file):
    gz_file.write_bytes(gz_file.read_bytes() + gzip.compress(b"abc"))
    _assert_format_error(gz_file, "trailing bytes")


def test_multi_member_gzip_reads_like_one_stream(tmp_path):
    content = _header(0x0B, 2, 3) + np.arange(6, dtype=">i2").tobytes()
    path = tmp_path / "members.idx.gz"
    for split in range(len(content) + 1):  # two members, cut at every byte (an empty member included)
        path.write_bytes(gzip.compress(content[:split]) + gzip.compress(content[split:]))
        assert gzip.decompress(path.read_bytes()) == content
        assert read_idx(path).tolist() == [[0, 1, 2], [3, 4, 5]], f"split at byte {split}"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "gzip"])
def test_absurd_sizes_fail_fast_without_allocating(tmp_path, compressed):
    content = _header(0x0E, 2**32 - 1, 2**32 - 1, 2**32 - 1) + bytes(64)
    path = tmp_path / "absurd.idx"
    path.write_bytes(gzip.compress(content) if compressed else content)
    start = time.perf_counter()
    _assert_format_error(path, "(4294967295, 4294967295, 4294967295)")
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(
    "content",
    [
        _header(0x08, 0, 2**32 - 1, 2**32 - 1),  # no items, but NumPy cannot describe the shape
        _header(0x08, *[0] * 65),  # more dimensions than a NumPy array can have
        _header(0x08, *[1] * 65) + b"\x07",
    ],
    ids=["empty-huge-dims", "65-zero-dims", "65-unit-dims"],
)
def test_shapes_numpy_cannot_hold_are_format_errors(tmp_path, content):
    path = tmp_path / "unholdable.idx"
    path.write_bytes(content)
    _assert_format_error(path)


MUTATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("truncate"), st.integers(0, 10_000)),
        st.tuples(st.just("set"), st.integers(0, 10_000), st.integers(0, 255)),
        st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(0, 7)),
        st.tuples(st.just("insert"), st.integers(0, 10_000), st.binary(min_size=1, max_size=8)),
        st.tuples(st.just("append"), st.binary(min_size=1, max_size=16)),
    ),
    min_size=1,
    max_size=4,
)


def _mutate(blob: bytes, mutations) -> bytes:
    data = bytearray(blob)
    for kind, *args in mutations:
        if kind == "append":
            data += args[0]
        elif kind == "truncate":
            del data[args[0] % (len(data) + 1) :]
        elif not data:
            continue
        elif kind == "set":
            data[args[0] % len(data)] = args[1]
        elif kind == "flip":
            data[args[0] % len(data)] ^= 1 << args[1]
        elif kind == "insert":
            at = args[0] % (len(data) + 1)
            data[at:at] = args[1]
    return bytes(data)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    array=hnp.arrays(st.sampled_from(IDX_DTYPES), hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6)),
    compress=st.booleans(),
    mutations=MUTATIONS,
)
def test_damaged_files_read_consistently_or_raise_format_error(tmp_path_factory, array, compress, mutations):
    folder = tmp_path_factory.mktemp("fuzz")
    valid = write_idx(folder / "valid.idx", array, compress=compress).read_bytes()
    path = folder / "damaged.idx"
    path.write_bytes(_mutate(valid, mutations))
    try:
        header = read_idx_header(path)
    except IDXFormatError:
        header = None
    try:
        result = read_idx(path)
    except IDXFormatError as error:
        assert error.path == path
        return
    assert header is not None, "read_idx succeeded where read_idx_header failed"
    assert result.shape == header.shape
    assert result.dtype == header.dtype.newbyteorder("=")
    assert result.flags.writeable


# --- read_idx_header -------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("dtype", IDX_DTYPES, ids=str)
def test_header_matches_what_was_written(tmp_path, dtype, compress):
    path = write_idx(tmp_path / "h.idx", np.zeros((3, 0, 7), dtype=dtype), compress=compress)
    header = read_idx_header(path)
    assert header.dtype == dtype.newbyteorder(">")  # as stored: big-endian
    assert header.shape == (3, 0, 7)
    assert header.header_bytes == 16 and header.data_bytes == 0


def test_header_reader_ignores_the_data(tmp_path, gz_file):
    raw = tmp_path / "promises_too_much.idx"
    raw.write_bytes(_header(0x0C, 1000, 1000) + bytes(3))
    assert read_idx_header(raw).shape == (1000, 1000)
    assert read_idx_header(raw).data_bytes == 4_000_000

    gz_file.write_bytes(gz_file.read_bytes()[:200])  # the deflate stream is cut long after the header
    assert read_idx_header(gz_file).shape == (40, 50)
    with pytest.raises(IDXFormatError):
        read_idx(gz_file)


def test_header_reader_reports_malformed_headers(tmp_path):
    path = tmp_path / "h.idx"
    path.write_bytes(b"\x00\x00\x07\x01")
    with pytest.raises(IDXFormatError, match="unknown element type code 0x07") as caught:
        read_idx_header(path)
    assert caught.value.path == path


@pytest.mark.parametrize("reader", [read_idx, read_idx_header])
def test_missing_file(tmp_path, reader):
    with pytest.raises(FileNotFoundError):
        reader(tmp_path / "nowhere.idx")


# --- write_idx -------------------------------------------------------------------------------------


def test_write_returns_path_and_accepts_strings(tmp_path):
    path = write_idx(str(tmp_path / "s.idx"), np.array([1, 2, 3], dtype=np.uint8))
    assert path == tmp_path / "s.idx"
    assert read_idx(path).tolist() == [1, 2, 3]


def test_refuses_to_overwrite_and_leaves_file_intact(tmp_path):
    path = tmp_path / "keep.idx"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_idx(path, np.zeros(3, dtype=np.uint8))
    assert path.read_bytes() == b"precious"
    assert _names(tmp_path) == ["keep.idx"]


def test_overwrite_replaces_by_rename(tmp_path):
    path = write_idx(tmp_path / "r.idx", np.zeros(3, dtype=np.uint8))
    old_name = tmp_path / "old_link.idx"
    os.link(path, old_name)  # a second name for the old file: an atomic rename leaves it untouched
    write_idx(path, np.ones(5, dtype=np.uint8), overwrite=True)
    assert read_idx(path).tolist() == [1] * 5
    assert read_idx(old_name).tolist() == [0] * 3
    assert _names(tmp_path) == ["old_link.idx", "r.idx"]


@pytest.mark.parametrize("dtype", ["int64", "uint16", "uint32", "bool", "float16", "complex64", "object"])
def test_unsupported_dtype_writes_nothing(tmp_path, dtype):
    with pytest.raises(TypeError, match="IDX has no element type"):
        write_idx(tmp_path / "t.idx", np.zeros(2, dtype=dtype))
    assert _names(tmp_path) == []


def test_dimension_too_large_for_the_header(tmp_path):
    with pytest.raises(ValueError, match="does not fit an IDX header"):
        write_idx(tmp_path / "big.idx", np.empty((0, 2**32), dtype=np.uint8))
    assert _names(tmp_path) == []


def test_written_file_permissions_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_idx(tmp_path / "p.idx", np.zeros(1, dtype=np.uint8))
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


class _FailingGzipFile(gzip.GzipFile):
    """Writes the header, then fails in the middle of the data, as a full disk or Ctrl-C would."""

    def write(self, data):
        if len(memoryview(data)) > 8:
            raise KeyboardInterrupt
        return super().write(data)


@pytest.mark.parametrize("existing", [False, True], ids=["new", "replacing"])
def test_failure_midway_leaves_no_temporary_file(tmp_path, monkeypatch, existing):
    path = tmp_path / "f.idx.gz"
    if existing:
        path.write_bytes(b"old")
    monkeypatch.setattr(idx.gzip, "GzipFile", _FailingGzipFile)
    with pytest.raises(KeyboardInterrupt):
        write_idx(path, np.zeros(100, dtype=np.uint8), overwrite=True)
    assert _names(tmp_path) == (["f.idx.gz"] if existing else [])
    if existing:
        assert path.read_bytes() == b"old"


def test_failed_rename_leaves_no_temporary_file(tmp_path, monkeypatch):
    def refuse(src, dst):
        raise PermissionError(f"cannot rename {src} to {dst}")

    monkeypatch.setattr(idx.os, "replace", refuse)
    with pytest.raises(PermissionError):
        write_idx(tmp_path / "r.idx", np.zeros(3, dtype=np.uint8))
    assert _names(tmp_path) == []


@pytest.mark.parametrize(
    ("name", "compress", "gzipped"),
    [("a.idx", None, False), ("a.idx.gz", None, True), ("a.idx", True, True), ("a.gz", False, False)],
)
def test_compression_follows_the_name_unless_told(tmp_path, name, compress, gzipped):
    array = np.arange(12, dtype=np.int16).reshape(3, 4)
    path = write_idx(tmp_path / name, array, compress=compress)
    assert path.read_bytes()[:2] == (b"\x1f\x8b" if gzipped else b"\x00\x00")
    assert np.array_equal(read_idx(path), array)  # the reader goes by content, not by name


# --- the real MNIST files --------------------------------------------------------------------------

MNIST_FILES = {  # name: (shape, SHA-256 of the uncompressed file as published)
    "train-images-idx3-ubyte.gz": (
        (60000, 28, 28), "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
    ),
    "train-labels-idx1-ubyte.gz": (
        (60000,), "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
    ),
    "t10k-images-idx3-ubyte.gz": (
        (10000, 28, 28), "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        (10000,), "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
    ),
}


@pytest.fixture(scope="module")
def mnist_dir() -> Path:
    if not os.environ.get("MNIST_DIR"):
        pytest.skip("MNIST_DIR is not set: point it at a folder with the four MNIST .gz files")
    return Path(os.environ["MNIST_DIR"])


@pytest.mark.mnist
@pytest.mark.parametrize("name", MNIST_FILES)
def test_real_mnist_file(mnist_dir, name):
    shape, checksum = MNIST_FILES[name]
    array = read_idx(mnist_dir / name)
    assert array.shape == shape
    assert array.dtype == np.uint8
    # Header plus array bytes rebuild the uncompressed file, so its published checksum covers every pixel.
    rebuilt = struct.pack(">I", 0x800 | len(shape)) + struct.pack(f">{len(shape)}I", *shape) + array.tobytes()
    assert hashlib.sha256(rebuilt).hexdigest() == checksum


@pytest.mark.mnist
def test_first_ten_training_labels(mnist_dir):
    labels = read_idx(mnist_dir / "train-labels-idx1-ubyte.gz")
    assert labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
