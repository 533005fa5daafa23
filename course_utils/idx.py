"""Read and write files in the IDX format, the format MNIST is published in.

An IDX file is a small big-endian header followed by the array's elements in C order::

    bytes 0-1   0x00 0x00                      (the first two bytes are always zero)
    byte  2     element type code              (0x08 uint8, 0x09 int8, 0x0B int16,
                                                0x0C int32, 0x0D float32, 0x0E float64)
    byte  3     number of dimensions, n
    then        n sizes, each a 32-bit unsigned big-endian integer
    then        the elements, big-endian, in row-major order

Bytes 0-3 read as one big-endian integer are the *magic number*: 2051 (0x00000803) for MNIST's images
(uint8, three dimensions) and 2049 (0x00000801) for its labels (uint8, one dimension).

`read_idx` reads raw or gzip-compressed files (recognised by their content, not their name) straight
into the array it returns: one allocation, no intermediate copy of the data. Anything malformed raises
`IDXFormatError`, whose message names the file and what is wrong with it.
"""

from __future__ import annotations

import gzip
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass
from math import prod
from pathlib import Path

import numpy as np

__all__ = ["IDX_TYPE_CODES", "IDXFormatError", "IDXHeader", "read_idx", "read_idx_header", "write_idx"]

#: Element type code -> the big-endian NumPy dtype it stores.
IDX_TYPE_CODES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_FOR_KIND_SIZE = {(dt.kind, dt.itemsize): code for code, dt in IDX_TYPE_CODES.items()}
_TYPE_NAMES = ", ".join(f"0x{code:02X} {dt.name}" for code, dt in IDX_TYPE_CODES.items())
_GZIP_MAGIC = b"\x1f\x8b"
# Deflate cannot compress better than about 1032:1, so a gzip file of n bytes holds at most this much.
_DEFLATE_MAX_RATIO = 1032
_CHUNK = 1 << 20
_NUMPY_MAX_DIMS = 64


class IDXFormatError(ValueError):
    """A file is not a well-formed IDX file. ``path`` and ``problem`` say which file and why."""

    def __init__(self, path: os.PathLike | str, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass(frozen=True)
class IDXHeader:
    """What an IDX header declares: element type (as stored, big-endian) and shape."""

    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def magic_number(self) -> int:
        code = _CODE_FOR_KIND_SIZE[self.dtype.kind, self.dtype.itemsize]
        return (code << 8) | len(self.shape)

    @property
    def header_bytes(self) -> int:
        return 4 + 4 * len(self.shape)

    @property
    def data_bytes(self) -> int:
        return prod(self.shape) * self.dtype.itemsize


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _read_exactly(f, n: int) -> bytes:
    data = f.read(n)
    while len(data) < n:
        more = f.read(n - len(data))
        if not more:
            break
        data += more
    return data


def _parse_header(f, path: Path) -> IDXHeader:
    start = _read_exactly(f, 4)
    if len(start) < 4:
        raise IDXFormatError(path, f"file holds {len(start)} bytes, too few for the 4-byte IDX magic number")
    (magic,) = struct.unpack(">I", start)
    if start[0] or start[1]:
        raise IDXFormatError(
            path, f"bad magic number 0x{magic:08X}: an IDX file starts with two zero bytes "
            "(is this an IDX file, or a compressed one that was not recognised?)"
        )
    code, ndim = start[2], start[3]
    if code not in IDX_TYPE_CODES:
        raise IDXFormatError(path, f"unknown element type code 0x{code:02X} (IDX defines {_TYPE_NAMES})")
    dims = _read_exactly(f, 4 * ndim)
    if len(dims) < 4 * ndim:
        raise IDXFormatError(
            path, f"header declares {ndim} dimensions ({4 * ndim} bytes of sizes) "
            f"but the file ends after {len(dims)} of them"
        )
    shape = struct.unpack(f">{ndim}I", dims)
    dtype = IDX_TYPE_CODES[code]
    if ndim > _NUMPY_MAX_DIMS:
        raise IDXFormatError(path, f"header declares {ndim} dimensions; NumPy arrays have at most {_NUMPY_MAX_DIMS}")
    # NumPy refuses shapes whose byte count overflows, even with a zero-length dimension among them.
    if prod(n for n in shape if n) * dtype.itemsize > np.iinfo(np.intp).max:
        raise IDXFormatError(path, f"header declares shape {shape}, too large for any array")
    return IDXHeader(dtype, shape)


class _GzipStream:
    """A read-only file over a gzip file's decompressed bytes.

    Decompresses in 1 MiB steps straight into the caller's buffer: for MNIST this is as fast as
    ``gzip.decompress`` (see ``benchmarks/bench_idx.py``) while never holding a second copy of the data.
    Members of a multi-member file are read one after another, as ``gzip`` does.
    """

    def __init__(self, path: Path):
        self._pending = path.read_bytes()
        self._inflater = zlib.decompressobj(wbits=31)

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        got = 0
        while got < len(view):
            data = self._inflate(min(_CHUNK, len(view) - got))
            if not data:
                break
            view[got : got + len(data)] = data
            got += len(data)
        return got

    def read(self, n: int = -1) -> bytes:
        buffer = bytearray(n if n >= 0 else _CHUNK)
        return bytes(buffer[: self.readinto(buffer)])

    def _inflate(self, limit: int) -> bytes:
        while True:
            if self._inflater.eof:
                # What follows a finished member is in unused_data only; zlib may still show part of
                # it in unconsumed_tail, which must not be fed in a second time.
                rest = self._inflater.unused_data
                if not rest:
                    return b""
                if not rest.startswith(_GZIP_MAGIC):
                    raise gzip.BadGzipFile(f"{len(rest)} bytes after the end of the gzip stream")
                self._pending, self._inflater = rest, zlib.decompressobj(wbits=31)
            data = self._inflater.decompress(self._pending, limit)
            self._pending = self._inflater.unconsumed_tail
            if data:
                return data
            if not self._inflater.eof and not self._pending:
                raise EOFError("the compressed data ends before the end-of-stream marker")

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False


def _open_checked(path: Path):
    """Open ``path`` for reading, decompressing gzip; return (file, largest possible payload)."""
    size = path.stat().st_size
    if _is_gzip(path):
        return _GzipStream(path), size * _DEFLATE_MAX_RATIO
    return open(path, "rb", buffering=0), size


def read_idx_header(path: os.PathLike | str) -> IDXHeader:
    """Read only the header of an IDX file (raw or gzip) and return what it declares."""
    path = Path(path)
    f, _ = _open_checked(path)
    with f, _gzip_errors(path):
        return _parse_header(f, path)


def read_idx(path: os.PathLike | str) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a writable NumPy array in native byte order.

    The array has the dtype and shape the header declares. Raises `IDXFormatError` if the file is
    not well-formed: bad magic number, unknown type code, truncated header, fewer or more data bytes
    than the header promises, or a damaged gzip stream. Raises `FileNotFoundError` if it is missing.
    """
    path = Path(path)
    f, max_payload = _open_checked(path)
    with f, _gzip_errors(path):
        header = _parse_header(f, path)
        expected = header.data_bytes
        available = max_payload - header.header_bytes
        if expected > available:  # refuse before allocating what the file cannot hold
            raise _size_error(path, header, None if isinstance(f, _GzipStream) else available)
        array = np.empty(header.shape, dtype=header.dtype)
        got = _readinto_full(f, array.reshape(-1).view(np.uint8))
        if got < expected:
            raise _size_error(path, header, got)
        trailing = _count_rest(f)
        if trailing:
            raise IDXFormatError(
                path, f"{trailing} trailing bytes after the {prod(header.shape):,} items the header declares"
            )
    if not array.dtype.isnative:
        array = array.byteswap(inplace=True).view(array.dtype.newbyteorder("="))
    return array


def _readinto_full(f, buffer: np.ndarray) -> int:
    view = memoryview(buffer)
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def _count_rest(f) -> int:
    total = 0
    while chunk := f.read(_CHUNK):
        total += len(chunk)
    return total


def _size_error(path: Path, header: IDXHeader, got: int | None) -> IDXFormatError:
    items = prod(header.shape)
    promise = (
        f"header promises {items:,} items of shape {header.shape} ({header.data_bytes:,} bytes of "
        f"{header.dtype.name}s)"
    )
    if got is None:
        return IDXFormatError(path, f"{promise}, more than a gzip file of this size can hold")
    return IDXFormatError(
        path, f"{promise} but the file holds {got:,} bytes ({got // header.dtype.itemsize:,} items): "
        "it is truncated or its header is wrong"
    )


class _gzip_errors:
    """Turn the gzip/zlib errors of a damaged stream into an IDXFormatError naming the file."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if kind is EOFError:
            raise IDXFormatError(self.path, f"gzip stream is truncated ({error})") from error
        if kind is not None and issubclass(kind, (gzip.BadGzipFile, zlib.error)):
            raise IDXFormatError(self.path, f"gzip data is damaged ({error})") from error
        return False


def write_idx(
    path: os.PathLike | str, array: np.ndarray, *, compress: bool | None = None, overwrite: bool = False
) -> Path:
    """Write ``array`` as an IDX file and return its path.

    ``compress`` defaults to "yes if the name ends in .gz". The file appears atomically (written to a
    temporary file beside it, then renamed), and an existing file is never replaced unless
    ``overwrite=True``. The dtype must be one IDX defines: uint8, int8, int16, int32, float32, float64.
    """
    path = Path(path)
    array = np.asarray(array)
    code = _CODE_FOR_KIND_SIZE.get((array.dtype.kind, array.dtype.itemsize))
    if code is None:
        raise TypeError(f"IDX has no element type for dtype {array.dtype} (it defines {_TYPE_NAMES})")
    if array.ndim > 255 or any(n >= 2**32 for n in array.shape):
        raise ValueError(f"shape {array.shape} does not fit an IDX header (at most 255 dimensions < 2**32)")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    if compress is None:
        compress = path.suffix == ".gz"
    payload = struct.pack(f">BBBB{array.ndim}I", 0, 0, code, array.ndim, *array.shape)
    data = np.ascontiguousarray(array, dtype=IDX_TYPE_CODES[code])
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as raw:
            out = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if compress else raw
            out.write(payload)
            out.write(memoryview(data.reshape(-1).view(np.uint8)))
            if compress:
                out.close()
        os.chmod(tmp_name, 0o666 & ~_current_umask())  # mkstemp creates 0600; give the usual mode
        os.replace(tmp_name, path)
    except BaseException:
        os.unlink(tmp_name)
        raise
    return path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
