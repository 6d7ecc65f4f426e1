"""charrnn.io.safetensors_file: the container format read by charrnn itself; any
bytes give a file or a one-line CheckpointError, never a huge allocation."""
import struct
import time
import tracemalloc

import numpy as np
import pytest

from conftest import save_small, write_header, rejects


# ---------------------------------------------------------------- rejections

def test_missing_file_and_directory(tmp_path):
    assert "no such file" in rejects(tmp_path / "nope.safetensors")
    assert "directory" in rejects(tmp_path)


def test_truncated_at_any_offset(tmp_path):
    path = tmp_path / "model.safetensors"
    save_small(path)
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    cuts = [0, 1, 7, 8, 9, 8 + n // 2, 8 + n - 1, 8 + n, 8 + n + 1,
            (8 + n + len(data)) // 2, len(data) - 4, len(data) - 1]
    for cut in cuts:
        path.write_bytes(data[:cut])
        rejects(path)
    for cut in range(0, len(data), 13):   # and a sweep
        path.write_bytes(data[:cut])
        rejects(path)


def test_random_bytes(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "junk.safetensors"
    for size in [1, 8, 9, 64, 1000, 100_000]:
        path.write_bytes(rng.bytes(size))
        rejects(path)
    # random bytes behind a plausible header length
    path.write_bytes(struct.pack("<Q", 500) + rng.bytes(800))
    rejects(path)


@pytest.mark.parametrize("header,match", [
    (b"{not json at all}", "not valid JSON"),
    (b"[1, 2, 3]", "no JSON header"),
    (b"{\"a\": \xff\xfe}", "not UTF-8"),
    (b"{\"__metadata__\": {\"format\": 1}}", "map of strings"),
    (b"{" + b"[" * 100_000 + b"}", "not valid JSON"),
    (b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},'
     b' "w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', "repeated key"),
])
def test_header_not_usable(tmp_path, header, match):
    path = tmp_path / "m.safetensors"
    write_header(path, header, b"\0" * 4)
    rejects(path, match)


def test_header_length_field_bounded(tmp_path):
    path = tmp_path / "m.safetensors"
    for n in [2**63 - 1, 2**40, 200 * 2**20, 1000]:
        path.write_bytes(struct.pack("<Q", n) + b"{}" + b" " * 100)
        assert "header length" in rejects(path)


def test_terabyte_tensor_claims_are_rejected_without_allocating(tmp_path):
    path = tmp_path / "m.safetensors"
    claims = [  # offsets that run past the file; a shape larger than its offsets
        {"encoder.weight": {"dtype": "F32", "shape": [2**38],
                            "data_offsets": [0, 2**40]}},
        {"encoder.weight": {"dtype": "F32", "shape": [2**38], "data_offsets": [0, 16]}},
        {"encoder.weight": {"dtype": "F64", "shape": [2**40] * 100_000,
                            "data_offsets": [0, 16]}},
    ]
    for header in claims:
        header["__metadata__"] = {"format": "charrnn", "format_version": "1"}
        write_header(path, header, b"\0" * 16)
        tracemalloc.start()
        start = time.perf_counter()
        rejects(path, "past the end|more bytes than")
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert elapsed < 2 and peak < 50 * 2**20


def test_layout_gaps_overlaps_and_stray_bytes(tmp_path):
    path = tmp_path / "m.safetensors"
    meta = {"format": "charrnn", "format_version": "1"}
    gap = {"__metadata__": meta,
           "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
           "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}
    write_header(path, gap, b"\0" * 12)
    rejects(path, "gaps")
    overlap = dict(gap, b={"dtype": "F32", "shape": [1], "data_offsets": [0, 4]})
    write_header(path, overlap, b"\0" * 4)
    rejects(path, "overlaps")
    save_small(path)
    path.write_bytes(path.read_bytes() + b"extra")
    rejects(path, "stray bytes")


@pytest.mark.parametrize("entry,match", [
    ({"dtype": "BF16", "shape": [1], "data_offsets": [0, 4]}, "unsupported dtype"),
    ({"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}, "bad shape"),
    ({"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}, "bad shape"),
    ({"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}, "bad data offsets"),
    ({"dtype": "F32", "shape": [1], "data_offsets": [0]}, "bad data offsets"),
    ({"dtype": "F32", "shape": [1]}, "bad header entry"),
    ({"dtype": "F16", "shape": [1], "data_offsets": [0, 4]},
     r"2 bytes\) but occupies 4"),
])
def test_bad_tensor_entries(tmp_path, entry, match):
    path = tmp_path / "m.safetensors"
    write_header(path, {"__metadata__": {"format": "charrnn", "format_version": "1"},
                        "w": entry}, b"\0" * 4)
    rejects(path, match)
