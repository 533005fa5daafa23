"""Tests for course_utils.display: the hex view chapter 2 shows of the IDX headers."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from course_utils.display import hex_dump

MNIST_TRAIN_IMAGES_HEADER = bytes.fromhex("00000803 0000ea60 0000001c 0000001c")


def test_hex_dump_of_the_mnist_images_header():
    assert hex_dump(MNIST_TRAIN_IMAGES_HEADER) == (
        "00000000  00 00 08 03 00 00 ea 60  00 00 00 1c 00 00 00 1c  |.......`........|"
    )


def test_short_last_line_is_padded_so_the_text_column_lines_up():
    lines = hex_dump(bytes(range(0x41, 0x41 + 20))).splitlines()
    assert len(lines) == 2
    assert lines[0].index("|") == lines[1].index("|")
    assert lines[1] == "00000010  51 52 53 54" + " " * 39 + "|QRST|"


def test_offsets_count_from_start_and_follow_width():
    lines = hex_dump(bytes(24), width=8, start=0x10).splitlines()
    assert [line[:8] for line in lines] == ["00000010", "00000018", "00000020"]
    assert lines[0] == "00000010  00 00 00 00 00 00 00 00  |........|"


def test_non_printable_bytes_show_as_dots():
    assert hex_dump(b"\x00A\x7f~\xff").endswith("|.A.~.|")


def test_accepts_bytearray_and_memoryview_and_empty_input():
    data = bytes(range(32))
    assert hex_dump(bytearray(data)) == hex_dump(memoryview(data)) == hex_dump(data)
    assert hex_dump(b"") == ""


@pytest.mark.parametrize("kwargs", [{"width": 0}, {"start": -1}])
def test_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        hex_dump(b"abc", **kwargs)


@pytest.mark.skipif(shutil.which("hexdump") is None, reason="needs the hexdump tool")
def test_same_as_hexdump_dash_c():
    data = bytes(range(256)) + b"MNIST"
    expected = subprocess.run(["hexdump", "-C"], input=data, capture_output=True, check=True).stdout
    # hexdump -C ends with a line holding the total length; our view stops at the data.
    assert hex_dump(data) == "\n".join(expected.decode("ascii").splitlines()[:-1])
