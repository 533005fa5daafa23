"""Text views of raw data for the notebooks: what the bytes of a file really are.

:func:`hex_dump` prints bytes the way ``hexdump -C`` (or ``xxd``) does, so a reader can check a file
header by eye against the format's specification.
"""

from __future__ import annotations

__all__ = ["hex_dump"]


def hex_dump(data: bytes | bytearray | memoryview, width: int = 16, *, start: int = 0) -> str:
    """Return ``data`` as lines of ``offset  hex bytes  |printable characters|``.

    Each line shows ``width`` bytes: the offset of its first byte (8 hexadecimal digits, counted from
    ``start``, the position of ``data[0]`` in its file), the bytes in hexadecimal (an extra space after
    every eighth), and the same bytes as ASCII characters, with ``.`` for those that are not printable.
    The last line is padded so that its character column lines up with the others. Empty ``data``
    gives an empty string.

    >>> print(hex_dump(bytes([0, 0, 8, 3, 0, 0, 0xEA, 0x60])))
    00000000  00 00 08 03 00 00 ea 60                           |.......`|
    """
    if width < 1:
        raise ValueError(f"width must be a positive number of bytes per line, got {width}")
    if start < 0:
        raise ValueError(f"start must be a non-negative file offset, got {start}")
    data = bytes(data)
    hex_columns = 3 * width + (width - 1) // 8  # "xx " per byte, one more space per group of 8
    lines = []
    for line_start in range(0, len(data), width):
        chunk = data[line_start : line_start + width]
        groups = [chunk[i : i + 8] for i in range(0, len(chunk), 8)]
        hex_part = "  ".join(" ".join(f"{byte:02x}" for byte in group) for group in groups)
        text = "".join(chr(byte) if 0x20 <= byte < 0x7F else "." for byte in chunk)
        lines.append(f"{start + line_start:08x}  {hex_part:<{hex_columns - 1}}  |{text}|")
    return "\n".join(lines)
