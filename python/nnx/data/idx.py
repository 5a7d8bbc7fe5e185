"""The IDX file format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/, "FILE FORMATS").

    bytes 0-1   zero
    byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
    byte  3     number of dimensions d
    d x uint32  the size of each dimension, big-endian
    then        the elements in C order, big-endian

Files may be gzip-compressed (recognised by their first two bytes, not by the name).
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib

import numpy as np

# IDX type code -> big-endian NumPy dtype of the stored elements.
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF = {dt.newbyteorder("="): code for code, dt in IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:  # truncated or damaged gzip stream
        raise ValueError(f"{os.fspath(path)}: corrupt or truncated gzip data ({exc})") from None


def parse_idx(raw: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decodes IDX bytes (already decompressed) into a native-endian array; `name` goes into errors."""
    if len(raw) < 4:
        raise ValueError(f"{name}: truncated IDX file: expected a 4-byte header, got {len(raw)} bytes")
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0:
        raise ValueError(f"{name}: not an IDX file: expected the magic number to start with two zero bytes, "
                         f"got {raw[:4].hex()}")
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise ValueError(f"{name}: corrupt IDX header: expected an element type in ({known}), got 0x{code:02X}")
    if ndim == 0:
        raise ValueError(f"{name}: corrupt IDX header: expected at least 1 dimension, got 0")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{name}: truncated IDX file: expected a {header}-byte header for {ndim} dimensions, "
                         f"got {len(raw)} bytes")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(raw) - header
    if found < expected:
        raise ValueError(f"{name}: truncated IDX file: shape {shape} of {dtype.newbyteorder('=').name} needs "
                         f"{expected} data bytes, found {found}")
    if found > expected:
        raise ValueError(f"{name}: corrupt IDX file: shape {shape} of {dtype.newbyteorder('=').name} needs "
                         f"{expected} data bytes, found {found} ({found - expected} extra)")
    data = np.frombuffer(raw, dtype=dtype, count=expected // dtype.itemsize, offset=header)
    # astype copies into a writable, native-endian array.
    return data.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def load_idx(path) -> np.ndarray:
    """Reads an IDX file (raw or gzip) into a writable native-endian ndarray of the stored shape.

    Raises FileNotFoundError when the file is missing and ValueError naming the file when it is
    truncated, corrupt or not IDX at all.
    """
    return parse_idx(_read_bytes(path), os.fspath(path))


def save_idx(path, array) -> None:
    """Writes `array` as IDX; a name ending in .gz is gzip-compressed (reproducibly: no timestamp)."""
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    if native not in _CODE_OF:
        raise TypeError(f"array: expected one of uint8, int8, int16, int32, float32, float64, got {array.dtype}")
    if array.ndim < 1 or array.ndim > 255:
        raise ValueError(f"array: expected 1 to 255 dimensions, got {array.ndim}")
    if any(s >= 2**32 for s in array.shape):
        raise ValueError(f"array: every dimension must be below 2**32, got shape {array.shape}")
    code = _CODE_OF[native]
    payload = (struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
               + np.ascontiguousarray(array, dtype=IDX_DTYPES[code]).tobytes())
    path = os.fspath(path)
    if path.endswith(".gz"):
        payload = gzip.compress(payload, compresslevel=9, mtime=0)
    with open(path, "wb") as f:
        f.write(payload)
