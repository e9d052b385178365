"""Reads a float32 safetensors file into numpy arrays, without the `safetensors` package.

The format: an 8-byte little-endian header length N, N bytes of JSON mapping each tensor name to
{"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to the end of the header), an
optional "__metadata__" of strings, then the raw little-endian data.
"""

import json
import os
import struct

import numpy as np

_DTYPES = {"F32": np.dtype("<f4")}


def read(path):
    """Returns (tensors: dict name -> read-only float32 ndarray, metadata: dict)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{path}: {size} bytes, too short for a safetensors file (expected an 8-byte header length)")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > 100 << 20:
            raise ValueError(f"{path}: header length {n} does not fit the file's {size} bytes; the file is truncated or not safetensors")
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: the header is not JSON ({e}); the file is not safetensors") from None
    # memory-mapped, read-only: a large model is paged in as the forward touches it, not copied first
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n) if size > 8 + n else np.zeros(0, dtype=np.uint8)
    metadata = header.pop("__metadata__", None) or {}
    tensors = {}
    spans = []
    for name, t in header.items():
        dtype = _DTYPES.get(t.get("dtype"))
        if dtype is None:
            raise ValueError(f"{path}: tensor {name} has dtype {t.get('dtype')}; this reader takes F32 (what catena export writes)")
        begin, end = t["data_offsets"]
        shape = tuple(int(s) for s in t["shape"])
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if end - begin != count * dtype.itemsize or end > len(data):
            raise ValueError(f"{path}: tensor {name} shape {list(shape)} needs {count * dtype.itemsize} bytes at [{begin}, {end}) "
                             f"of {len(data)} data bytes; the file is corrupt or truncated")
        tensors[name] = np.frombuffer(data, dtype=dtype, count=count, offset=begin).reshape(shape)
        spans.append((begin, end, name))
    spans.sort()
    at = 0
    for begin, end, name in spans:
        if begin != at:
            raise ValueError(f"{path}: tensor {name} starts at data offset {begin}, expected {at} (tensors must tile the data)")
        at = end
    return tensors, metadata
