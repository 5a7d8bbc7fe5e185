"""nnx.save / nnx.load: round trips, atomic writes, and refusal of corrupt or pickled files."""
import io as stdio
import os
import struct
import zipfile

import numpy as np
import pytest

import nnx


def _assert_tree_equal(a, b):
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, dict):
        assert list(a.keys()) == list(b.keys())
        for k in a:
            _assert_tree_equal(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_tree_equal(x, y)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b


def test_round_trip_state_dict(tmp_path):
    rng = np.random.default_rng(0)
    sd = {"0.weight": rng.standard_normal((6, 1, 5, 5)).astype(np.float32),
          "0.bias": np.zeros(6, np.float32), "3.weight": rng.standard_normal((4, 3))}
    p = tmp_path / "m.npz"
    nnx.save(sd, p)
    back = nnx.load(p)
    _assert_tree_equal(sd, back)
    # Any NumPy reads the arrays by name.
    with np.load(p, allow_pickle=False) as z:
        np.testing.assert_array_equal(z["0.weight"], sd["0.weight"])


def test_round_trip_nested_checkpoint(tmp_path):
    rng = np.random.default_rng(1)
    nnx.manual_seed(7)
    ckpt = {
        "model": {"fc.weight": rng.standard_normal((3, 2)).astype(np.float32), "fc.bias": np.arange(3.0)},
        "optimizer": {"state": {0: {"momentum_buffer": np.ones((3, 2), np.float32)}, 1: {}},
                      "param_groups": [{"lr": 0.02, "momentum": 0.9, "nesterov": False, "params": [0, 1]}]},
        "epoch": 3, "note": "ok", "best": None, "ratio": float("nan"), "big": 2**100, "inf": float("-inf"),
        "tup": (1, "a", np.int8(5)), "scalar": np.float32(1.5), "empty": np.zeros((0, 4)),
        "rng": nnx.random.get_rng_state(), "a.b": 1, "a": {"b": np.ones(2)}, "utf": "ü→",
    }
    p = tmp_path / "ckpt.npz"
    nnx.save(ckpt, p)
    back = nnx.load(p)
    _assert_tree_equal(ckpt, back)
    assert back["scalar"].dtype == np.float32 and back["tup"][2].dtype == np.int8
    # The restored RNG state continues the same stream.
    expected = nnx.random.get_rng().random(3)
    nnx.random.set_rng_state(back["rng"])
    np.testing.assert_array_equal(nnx.random.get_rng().random(3), expected)


def test_save_overwrites_and_keeps_permissions_and_exact_name(tmp_path):
    p = tmp_path / "ckpt"  # no .npz suffix: the name is used as given
    nnx.save({"x": np.ones(2)}, p)
    nnx.save({"x": np.zeros(3)}, p)
    assert nnx.load(p)["x"].shape == (3,)
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]
    assert os.stat(p).st_mode & 0o644 == 0o644


def test_failure_mid_write_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    p = tmp_path / "ckpt.npz"
    nnx.save({"w": np.arange(4.0)}, p)
    before = p.read_bytes()

    def broken_savez(file, **arrays):
        file.write(b"PK partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        nnx.save({"w": np.zeros(4)}, p)
    assert p.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    # KeyboardInterrupt mid-write (Ctrl-C) is cleaned up the same way.
    monkeypatch.setattr(np, "savez", lambda f, **a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        nnx.save({"w": np.zeros(4)}, p)
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    monkeypatch.undo()
    np.testing.assert_array_equal(nnx.load(p)["w"], np.arange(4.0))


def test_unsupported_values_are_refused(tmp_path):
    with pytest.raises(TypeError, match="obj: expected a dict"):
        nnx.save([np.ones(2)], tmp_path / "x.npz")
    with pytest.raises(TypeError, match=r"obj\[a.b\]: object arrays would need pickle"):
        nnx.save({"a": {"b": np.array([1, "x"], dtype=object)}}, tmp_path / "x.npz")
    with pytest.raises(TypeError, match=r"obj\[f\]: cannot save a value of type builtin_function"):
        nnx.save({"f": len}, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="dict keys of type str or int"):
        nnx.save({(1, 2): 3}, tmp_path / "x.npz")
    assert os.listdir(tmp_path) == []


def test_truncated_file(tmp_path):
    p = tmp_path / "t.npz"
    nnx.save({"w": np.arange(1000.0), "v": np.ones(10)}, p)
    data = p.read_bytes()
    for cut in (10, len(data) // 2, len(data) - 5):
        p.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="t.npz.*(truncated|corrupt)"):
            nnx.load(p)


def test_corrupt_and_foreign_files(tmp_path):
    p = tmp_path / "c.npz"
    nnx.save({"w": np.arange(1000.0)}, p)
    data = bytearray(p.read_bytes())
    data[200:260] = b"\xff" * 60  # inside the array data: the zip CRC catches it
    p.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="c.npz"):
        nnx.load(p)
    p.write_bytes(b"hello, not a checkpoint")
    with pytest.raises(ValueError, match="c.npz: not a valid nnx checkpoint: not a .npz"):
        nnx.load(p)
    np.save(tmp_path / "plain.npy", np.ones(3))
    with pytest.raises(ValueError, match="plain.npy"):
        nnx.load(tmp_path / "plain.npy")
    with pytest.raises(FileNotFoundError):
        nnx.load(tmp_path / "missing.npz")


def test_pickled_member_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    buf = stdio.BytesIO()
    np.save(buf, np.array([Evil()], dtype=object), allow_pickle=True)
    p = tmp_path / "evil.npz"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("w.npy", buf.getvalue())
    with pytest.raises(ValueError, match="evil.npz: refused to load.*pickle"):
        nnx.load(p)
    assert not (tmp_path / "pwned").exists()


def test_manifest_is_validated(tmp_path):
    p = tmp_path / "m.npz"
    bad = np.frombuffer(b'{"format": "nnx-checkpoint", "version": 1, "tree": {"$dict": [["w", {"$array": "x"}]]}}',
                        np.uint8)
    np.savez(p, __nnx_manifest__=bad)
    with pytest.raises(ValueError, match="array 'x' named in the manifest is missing"):
        nnx.load(p)
    np.savez(p, __nnx_manifest__=np.frombuffer(b"{not json", np.uint8))
    with pytest.raises(ValueError, match="manifest is not valid JSON"):
        nnx.load(p)
    ok = np.frombuffer(b'{"format": "nnx-checkpoint", "version": 1, "tree": {"$dict": []}}', np.uint8)
    np.savez(p, __nnx_manifest__=ok, stray=np.ones(1))
    with pytest.raises(ValueError, match="not named in the manifest"):
        nnx.load(p)
    newer = np.frombuffer(b'{"format": "nnx-checkpoint", "version": 99, "tree": {"$dict": []}}', np.uint8)
    np.savez(p, __nnx_manifest__=newer)
    with pytest.raises(ValueError, match="newer than this nnx"):
        nnx.load(p)


def test_plain_npz_loads_flat(tmp_path):
    p = tmp_path / "plain.npz"
    np.savez(p, a=np.ones(2), b=np.arange(3))
    back = nnx.load(p)
    assert sorted(back) == ["a", "b"]


def test_tensors_are_saved_as_arrays(tmp_path):
    Tensor = getattr(nnx, "Tensor", None)
    if Tensor is None:
        pytest.skip("nnx.Tensor not merged yet")
    t = Tensor(np.arange(6, dtype=np.float32).reshape(2, 3), requires_grad=True)
    nnx.save({"t": t}, tmp_path / "t.npz")
    back = nnx.load(tmp_path / "t.npz")["t"]
    assert isinstance(back, np.ndarray) and back.dtype == np.float32
    np.testing.assert_array_equal(back, t.numpy())


def _small_checkpoint():
    return {"model": {"0.weight": np.arange(24, dtype=np.float32).reshape(6, 1, 2, 2),
                      "0.bias": np.ones(6, np.float32),
                      "fc.weight": np.asfortranarray(np.arange(12.0).reshape(3, 4))},  # stored Fortran-ordered
            "epoch": 3, "history": {"loss": [0.5, 0.25]}}


def test_every_truncation_is_a_checkpoint_error(tmp_path):
    p = tmp_path / "t.npz"
    nnx.save(_small_checkpoint(), p)
    data = p.read_bytes()
    # Every 7th offset, and every offset in the last 150 bytes, where the zip directory lies.
    for cut in sorted(set(range(0, len(data), 7)) | set(range(len(data) - 150, len(data)))):
        p.write_bytes(data[:cut])
        with pytest.raises(nnx.CheckpointError, match="t.npz: ") as info:
            nnx.load(p)
        assert isinstance(info.value, ValueError)


def test_single_bit_flips_are_detected_or_harmless(tmp_path):
    """A flipped bit anywhere either raises CheckpointError or hits a byte the reader ignores (a zip
    timestamp, say) and gives back exactly the saved checkpoint: never a different model, never another
    exception. Before the zip directory's entry count was checked, flips there dropped members silently."""
    ckpt = _small_checkpoint()
    p = tmp_path / "f.npz"
    nnx.save(ckpt, p)
    data = p.read_bytes()
    payload = []  # byte ranges of the members' contents (each .npy header and data)
    with zipfile.ZipFile(p) as z:
        for info in z.infolist():
            name_len, extra_len = struct.unpack_from("<HH", data, info.header_offset + 26)
            start = info.header_offset + 30 + name_len + extra_len
            payload.append((start, start + info.compress_size))
    detected = 0
    for i in range(len(data)):
        flipped = bytearray(data)
        flipped[i] ^= 1 << (i % 8)
        p.write_bytes(bytes(flipped))
        try:
            back = nnx.load(p)
        except nnx.CheckpointError:
            detected += 1
            continue
        assert not any(lo <= i < hi for lo, hi in payload), f"a flip in a member's contents at {i} went unnoticed"
        _assert_tree_equal(ckpt, back)
    assert detected > len(data) // 2


def test_object_arrays_inside_a_checkpoint_are_refused(tmp_path):
    """An nnx checkpoint (manifest and all) whose array member is an object or object-field array."""
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))

    for evil in (np.array([Evil()], dtype=object), np.array([(1, Evil())], dtype=[("a", "i4"), ("b", "O")])):
        p = tmp_path / "evil.npz"
        nnx.save({"w": np.ones(1)}, p)
        buf = stdio.BytesIO()
        np.save(buf, evil, allow_pickle=True)
        with zipfile.ZipFile(p) as z:
            members = {n: z.read(n) for n in z.namelist()}
        members["w.npy"] = buf.getvalue()
        with zipfile.ZipFile(p, "w") as z:
            for name, raw in members.items():
                z.writestr(name, raw)
        with pytest.raises(nnx.CheckpointError, match=r"evil.npz: refused to load: member 'w' holds Python "
                                                         r"objects.*never unpickles"):
            nnx.load(p)
        assert not (tmp_path / "pwned").exists()


def test_npy_header_must_match_its_data(tmp_path):
    """A member whose header promises fewer elements than it holds (a CRC-valid but inconsistent file)."""
    p = tmp_path / "h.npz"
    buf = stdio.BytesIO()
    np.save(buf, np.arange(10.0))
    raw = buf.getvalue().replace(b"(10,)", b"(4,) ")
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("w.npy", raw)
    with pytest.raises(nnx.CheckpointError, match=r"member 'w': its header says float64 \(4,\) \(32 bytes\) "
                                                     r"but 80 bytes of data follow"):
        nnx.load(p)


def test_save_fsyncs_file_then_renames_then_fsyncs_directory(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        st = os.fstat(fd)
        events.append(("fsync-dir" if os.path.stat.S_ISDIR(st.st_mode) else "fsync-file", st.st_ino))
        return real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.stat(src).st_ino))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    p = tmp_path / "ckpt.npz"
    nnx.save({"w": np.arange(3.0)}, p)
    ino = os.stat(p).st_ino
    assert events == [("fsync-file", ino), ("replace", ino), ("fsync-dir", os.stat(tmp_path).st_ino)]


@pytest.mark.parametrize("error", [OSError("rename failed"), KeyboardInterrupt()])
def test_failed_rename_keeps_previous_checkpoint(tmp_path, monkeypatch, error):
    p = tmp_path / "ckpt.npz"
    nnx.save(_small_checkpoint(), p)
    before = p.read_bytes()

    def replace(src, dst):
        raise error

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(type(error)):
        nnx.save({"w": np.zeros(5)}, p)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ckpt.npz"]  # the temporary file is gone
    assert p.read_bytes() == before
    _assert_tree_equal(_small_checkpoint(), nnx.load(p))


def test_interrupt_right_after_the_temporary_file_is_created_leaves_no_file(tmp_path, monkeypatch):
    """A Ctrl-C can land between the open that creates the temporary file and the next statement (seen in
    a real SIGINT run of the CLI): save must still remove it, and leave the previous checkpoint alone."""
    p = tmp_path / "ck.npz"
    nnx.save({"w": np.ones(3)}, p)
    real_open = os.open

    def open_then_interrupt(*args, **kwargs):
        real_open(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "open", open_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        nnx.save({"w": np.zeros(3)}, p)
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["ck.npz"]
    np.testing.assert_array_equal(nnx.load(p)["w"], np.ones(3))
