"""Checkpoints: nested dicts of arrays and plain values in a .npz file, without pickle, written atomically.

File layout: one .npy member per array, named by its dotted path ("model.0.weight",
"optimizer.state.0.momentum_buffer"), plus a member "__nnx_manifest__": UTF-8 JSON (as uint8) that
records the tree: dicts (their keys may be str or int, and may themselves contain dots), lists,
tuples, and the non-array leaves (numbers, strings, booleans, None) in place, arrays by member name.
Any NumPy can read the arrays back with np.load(path); nothing in the file is ever unpickled.
"""
from __future__ import annotations

import io as stdio
import json
import math
import os
import struct
import uuid
import zipfile
import zlib
from collections.abc import Mapping

import numpy as np

MANIFEST = "__nnx_manifest__"
FORMAT = "nnx-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A file that nnx.load cannot trust: not a checkpoint, truncated, corrupted, or holding pickled data."""


def _as_array(value):
    """ndarray (or something exposing __array__, like a Tensor) -> ndarray, else None."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, np.generic):
        return np.asarray(value)
    if hasattr(value, "__array__") and not isinstance(value, (list, tuple, str, bytes, Mapping)):
        return np.asarray(value)
    if hasattr(value, "numpy") and callable(value.numpy):
        return np.asarray(value.numpy())
    return None


class _Encoder:
    def __init__(self):
        self.arrays = {}

    def _name(self, path: str) -> str:
        name = path or "array"
        if name == MANIFEST or name in self.arrays:
            i = 1
            while f"{name}#{i}" in self.arrays:
                i += 1
            name = f"{name}#{i}"
        return name

    def encode(self, value, path: str):
        where = path or "<root>"
        if isinstance(value, Mapping):
            items = []
            for key, item in value.items():
                if isinstance(key, bool) or not isinstance(key, (str, int)):
                    raise TypeError(f"obj[{where}]: expected dict keys of type str or int, got {key!r}")
                items.append([key, self.encode(item, f"{path}.{key}" if path else str(key))])
            return {"$dict": items}
        if isinstance(value, (list, tuple)):
            tag = "$list" if isinstance(value, list) else "$tuple"
            return {tag: [self.encode(v, f"{path}.{i}" if path else str(i)) for i, v in enumerate(value)]}
        if isinstance(value, np.generic):
            pass  # NumPy scalars keep their dtype: stored as 0-d arrays below
        elif value is None or isinstance(value, (bool, str)):
            return value
        elif isinstance(value, int):
            return value
        elif isinstance(value, float):
            # JSON has no NaN/Infinity; keep them exact as tagged strings.
            return value if math.isfinite(value) else {"$float": repr(value)}
        array = _as_array(value)
        if array is None:
            raise TypeError(f"obj[{where}]: cannot save a value of type {type(value).__name__}; expected an "
                            f"ndarray, a number, a string, a bool, None, or a dict/list/tuple of those")
        if array.dtype.hasobject:
            raise TypeError(f"obj[{where}]: object arrays would need pickle, which nnx checkpoints never use")
        name = self._name(path)
        self.arrays[name] = array
        node = {"$array": name}
        if isinstance(value, np.generic):
            node["scalar"] = True
        return node


def save(obj, path) -> None:
    """Writes `obj` (a state dict name -> ndarray, or a nested dict of state dicts, numbers, strings,
    lists...) to `path` as .npz, atomically: the data goes to a temporary file in the same directory,
    is flushed and fsync'ed, then renamed over `path` (os.replace), and the directory is fsync'ed. A
    crash or error mid-write leaves any previous file at `path` untouched. The path is used as given
    (no ".npz" is appended)."""
    if not isinstance(obj, Mapping):
        raise TypeError(f"obj: expected a dict (e.g. model.state_dict()), got {type(obj).__name__}")
    enc = _Encoder()
    tree = enc.encode(obj, "")
    manifest = json.dumps({"format": FORMAT, "version": VERSION, "tree": tree}, allow_nan=False)
    members = dict(enc.arrays)
    members[MANIFEST] = np.frombuffer(manifest.encode("utf-8"), dtype=np.uint8)

    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    # The temporary file's name is fixed before the file exists, so a Ctrl-C at any point after its creation
    # (even between the open and the next statement, which tempfile.mkstemp's caller cannot cover) finds the
    # name to remove. Created with the usual permissions (0666 less the umask).
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **members)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except FileExistsError:  # another writer's file of the same random name: not ours to remove
        raise
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: str) -> None:
    """Makes the rename durable. Not possible on every platform (Windows), where it is skipped."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


class _Decoder:
    def __init__(self, arrays, path):
        self.arrays = arrays
        self.path = path
        self.used = set()

    def bad(self, what):
        return CheckpointError(f"{self.path}: corrupt nnx checkpoint: {what}")

    def decode(self, node):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if not isinstance(node, dict) or len(node) == 0:
            raise self.bad(f"unexpected manifest entry {node!r}")
        if "$dict" in node:
            items = node["$dict"]
            if not isinstance(items, list):
                raise self.bad("a dict entry is not a list of [key, value] pairs")
            out = {}
            for pair in items:
                if (not isinstance(pair, list) or len(pair) != 2 or isinstance(pair[0], bool)
                        or not isinstance(pair[0], (str, int))):
                    raise self.bad(f"bad dict item {pair!r}")
                out[pair[0]] = self.decode(pair[1])
            return out
        if "$list" in node or "$tuple" in node:
            seq = node.get("$list", node.get("$tuple"))
            if not isinstance(seq, list):
                raise self.bad("a list entry is not a list")
            values = [self.decode(v) for v in seq]
            return values if "$list" in node else tuple(values)
        if "$float" in node:
            if node["$float"] not in ("nan", "inf", "-inf"):
                raise self.bad(f"bad float {node['$float']!r}")
            return float(node["$float"])
        if "$array" in node:
            name = node["$array"]
            if name not in self.arrays:
                raise self.bad(f"array {name!r} named in the manifest is missing")
            self.used.add(name)
            array = self.arrays[name]
            return array[()] if node.get("scalar") else array
        raise self.bad(f"unexpected manifest entry {node!r}")


_EOCD = struct.Struct("<4s4H2LH")  # zip end-of-central-directory record
_EOCD_SIGNATURE = b"PK\x05\x06"


def _check_directory_counts(f, infos) -> None:
    """zipfile reads the central directory by its byte size alone and ignores the record's entry counts,
    so a damaged size or entry header can silently drop members (the manifest among them). The counts and
    the directory's position, as the end record states them, must agree with what was read."""
    size = f.seek(0, os.SEEK_END)
    start = max(0, size - _EOCD.size - 0xFFFF)
    f.seek(start)
    tail = f.read()
    at = tail.rfind(_EOCD_SIGNATURE)
    if at < 0 or at + _EOCD.size > len(tail):
        raise CheckpointError("no zip end-of-directory record")
    _, disk, cd_disk, n_disk, n_total, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, at)
    if 0xFFFF in (n_disk, n_total) or 0xFFFFFFFF in (cd_size, cd_offset):
        return  # zip64: the counts live in the zip64 record, which zipfile reads and checks itself
    if disk != 0 or cd_disk != 0 or n_disk != n_total:
        raise CheckpointError("the zip end record describes a multi-disk archive")
    if n_total != len(infos):
        raise CheckpointError(f"the zip directory lists {n_total} members but {len(infos)} could be read")
    if cd_offset + cd_size != start + at:
        raise CheckpointError("the zip directory's size and offset do not match where it ends")


def _read_npy(name: str, raw: bytes) -> np.ndarray:
    """One .npy member, parsed without pickle; the header must describe exactly the bytes that follow."""
    fmt = np.lib.format
    buf = stdio.BytesIO(raw)
    version = fmt.read_magic(buf)
    if version == (1, 0):
        shape, fortran_order, dtype = fmt.read_array_header_1_0(buf)
    elif version == (2, 0):
        shape, fortran_order, dtype = fmt.read_array_header_2_0(buf)
    else:
        raise CheckpointError(f"member {name!r}: unsupported .npy format version {version}")
    if dtype.hasobject:
        raise CheckpointError(f"refused to load: member {name!r} holds Python objects (dtype {dtype}), which "
                              f"only pickle could restore, and nnx never unpickles")
    count = math.prod(shape)
    offset = buf.tell()
    if count * dtype.itemsize != len(raw) - offset:
        raise CheckpointError(f"member {name!r}: its header says {dtype} {shape} ({count * dtype.itemsize} "
                              f"bytes) but {len(raw) - offset} bytes of data follow")
    flat = np.frombuffer(raw, dtype=dtype, count=count, offset=offset)
    array = flat.reshape(shape[::-1]).transpose() if fortran_order else flat.reshape(shape)
    return array.copy(order="K")  # writable, and independent of `raw`


def _read_members(path: str) -> dict:
    arrays = {}
    with open(path, "rb") as f:
        if f.read(2) != b"PK":
            raise CheckpointError("not a .npz (zip) archive")
        with zipfile.ZipFile(f) as zf:
            infos = zf.infolist()
            _check_directory_counts(f, infos)
            for info in infos:
                if not info.filename.endswith(".npy"):
                    raise CheckpointError(f"member {info.filename!r} is not a .npy array")
                name = info.filename[:-4]
                if name in arrays:
                    raise CheckpointError(f"member {info.filename!r} appears twice")
                # zf.read checks the member's CRC-32 (the whole member is read, so the check always runs).
                arrays[name] = _read_npy(name, zf.read(info))
    return arrays


def load(path):
    """Reads a file written by nnx.save and returns the same nested structure (arrays as ndarrays).

    Never unpickles: object arrays and pickled members are refused. A missing file raises
    FileNotFoundError; a truncated, corrupt or foreign file raises CheckpointError (a ValueError) naming
    the file: every member's CRC-32 is checked, every .npy header must match its data exactly, and the
    zip directory's member count must match what was read. A plain .npz written by np.savez (no
    manifest) loads as a flat dict name -> ndarray.
    """
    path = os.fspath(path)
    try:
        arrays = _read_members(path)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise
    except CheckpointError as exc:
        msg = str(exc)
        if msg.startswith("refused to load"):
            raise CheckpointError(f"{path}: {msg}") from None
        raise CheckpointError(f"{path}: not a valid nnx checkpoint: {msg}") from None
    except (ValueError, zipfile.BadZipFile, EOFError, OSError, zlib.error, KeyError, RuntimeError,
            NotImplementedError, struct.error, OverflowError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({type(exc).__name__}: {exc})") from None

    if MANIFEST not in arrays:
        return arrays
    raw = arrays.pop(MANIFEST)
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise CheckpointError(f"{path}: corrupt nnx checkpoint: manifest is {raw.dtype} {raw.shape}, not uint8 bytes")
    try:
        manifest = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: corrupt nnx checkpoint: manifest is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or "tree" not in manifest:
        raise CheckpointError(f"{path}: corrupt nnx checkpoint: manifest lacks the format header")
    if not isinstance(manifest.get("version"), int) or manifest["version"] > VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {manifest.get('version')!r} is newer than this "
                         f"nnx reads ({VERSION}); upgrade nnx")
    dec = _Decoder(arrays, path)
    tree = dec.decode(manifest["tree"])
    extra = set(arrays) - dec.used
    if extra:
        raise dec.bad(f"arrays not named in the manifest: {sorted(extra)[:5]}")
    if not isinstance(tree, dict):
        raise dec.bad("the top level is not a dict")
    return tree
