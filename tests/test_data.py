"""nnx.data: IDX reading, data set lookup, the shipped sample, DataLoader and transforms."""
import gzip
import struct

import numpy as np
import pytest

import nnx
from nnx.data import idx as idxmod
from nnx.data import datasets

IDX_TYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


def _write_raw(path, payload, compress):
    if compress:
        payload = gzip.compress(payload)
    path.write_bytes(payload)
    return path


@pytest.mark.parametrize("dtype", IDX_TYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_idx_round_trip_all_dtypes(tmp_path, dtype, gz):
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
    p = tmp_path / ("a.idx.gz" if gz else "a.idx")
    nnx.data.save_idx(p, a)
    assert (p.read_bytes()[:2] == b"\x1f\x8b") == gz
    b = nnx.data.load_idx(p)
    assert b.dtype == np.dtype(dtype) and b.dtype.isnative and b.shape == a.shape
    np.testing.assert_array_equal(a, b)
    b[0] = 0  # writable


def test_idx_hand_written_big_endian(tmp_path):
    # Independent of save_idx: the spec's own bytes for a 2x3 int16 array.
    payload = struct.pack(">HBBII", 0, 0x0B, 2, 2, 3) + struct.pack(">6h", 1, -2, 300, -400, 5, 32767)
    p = _write_raw(tmp_path / "h.idx", payload, compress=False)
    np.testing.assert_array_equal(nnx.data.load_idx(p), [[1, -2, 300], [-400, 5, 32767]])
    one_d = struct.pack(">HBBI", 0, 0x08, 1, 4) + bytes([0, 1, 254, 255])
    p = _write_raw(tmp_path / "u.idx.gz", one_d, compress=True)
    np.testing.assert_array_equal(nnx.data.load_idx(p), [0, 1, 254, 255])


@pytest.mark.parametrize("payload, message", [
    (b"\x00\x00", "4-byte header"),
    (b"\x12\x34\x08\x01\x00\x00\x00\x01\x00", "two zero bytes"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x00", "element type"),
    (b"\x00\x00\x08\x00", "at least 1 dimension"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x02", "header for 3 dimensions"),
    (struct.pack(">HBBII", 0, 8, 2, 10, 10) + bytes(99), "truncated IDX file"),
    (struct.pack(">HBBI", 0, 0x0D, 1, 2) + bytes(9), "1 extra"),
])
def test_idx_bad_files_name_the_file(tmp_path, payload, message):
    p = _write_raw(tmp_path / "bad.idx", payload, compress=False)
    with pytest.raises(ValueError, match=message) as info:
        nnx.data.load_idx(p)
    assert "bad.idx" in str(info.value)


def test_idx_truncated_gzip(tmp_path):
    p = tmp_path / "t.gz"
    nnx.data.save_idx(p, np.arange(10000, dtype=np.int32))
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(ValueError, match="t.gz.*(corrupt|truncated)"):
        nnx.data.load_idx(p)


def test_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        nnx.data.load_idx(tmp_path / "nope.idx")


def test_save_idx_rejects_unsupported_dtype(tmp_path):
    with pytest.raises(TypeError, match="array: expected one of uint8"):
        nnx.data.save_idx(tmp_path / "x.idx", np.zeros(3, dtype=np.int64))


# --- data sets ----------------------------------------------------------------------------------------

def _fake_dataset(directory, n=12, label_values=None):
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = np.arange(n, dtype=np.uint8) % 10 if label_values is None else np.asarray(label_values, np.uint8)
    for split in ("train", "test"):
        img_name, lbl_name = datasets._FILES[split]
        nnx.data.save_idx(directory / (img_name + ".gz"), images)
        nnx.data.save_idx(directory / lbl_name, labels)  # raw, to test both spellings
    return images, labels


def test_fashion_mnist_from_root_and_env(tmp_path, monkeypatch):
    images, labels = _fake_dataset(tmp_path / "mine")
    X, y = nnx.data.fashion_mnist("test", root=tmp_path / "mine")
    assert X.dtype == np.uint8 and X.shape == (12, 28, 28) and y.dtype == np.int64
    np.testing.assert_array_equal(X, images)
    np.testing.assert_array_equal(y, labels)
    # $NNX_DATA/<name> is searched; root/<name> too.
    _fake_dataset(tmp_path / "env" / "mnist", n=5)
    monkeypatch.setenv("NNX_DATA", str(tmp_path / "env"))
    assert nnx.data.mnist("train")[0].shape == (5, 28, 28)
    assert nnx.data.mnist("train", root=tmp_path / "env")[0].shape == (5, 28, 28)


def test_missing_dataset_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("NNX_DATA", str(tmp_path / "empty"))
    monkeypatch.setattr(datasets, "_SYSTEM_DIR", tmp_path / "system")
    with pytest.raises(FileNotFoundError) as info:
        nnx.data.fashion_mnist("train", root=tmp_path / "r")
    msg = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in msg and "zalandoresearch" in msg
    assert str(tmp_path / "r") in msg and str(tmp_path / "empty" / "fashion-mnist") in msg
    with pytest.raises(FileNotFoundError, match="yann.lecun.com"):
        nnx.data.mnist("test")


def test_bad_split_and_bad_labels(tmp_path):
    with pytest.raises(ValueError, match="split: expected 'train' or 'test', got 'val'"):
        nnx.data.fashion_mnist_sample("val")
    _fake_dataset(tmp_path / "d", n=3, label_values=[0, 1, 12])
    with pytest.raises(ValueError, match=r"labels in \[0, 10\)"):
        nnx.data.fashion_mnist("train", root=tmp_path / "d")


def test_shipped_sample_is_real_balanced_fashion_mnist():
    X, y = nnx.data.fashion_mnist_sample("train")
    Xt, yt = nnx.data.fashion_mnist_sample("test")
    assert X.shape == (6000, 28, 28) and X.dtype == np.uint8 and y.dtype == np.int64
    assert Xt.shape == (1000, 28, 28) and yt.shape == (1000,)
    assert np.bincount(y).tolist() == [600] * 10
    assert np.bincount(yt).tolist() == [100] * 10
    # Real images, not noise: the mean pixel is about 0.286, corners are black, the centre is bright.
    assert 0.25 < X.mean() / 255 < 0.32
    assert X[:, 0, 0].mean() < 1 and X[:, 14, 14].mean() > 100


@pytest.mark.skipif(not (datasets._SYSTEM_DIR / "fashion-mnist").is_dir(),
                    reason="full Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
def test_full_fashion_mnist_and_sample_is_a_subset():
    Xt, yt = nnx.data.fashion_mnist("test")
    assert Xt.shape == (10000, 28, 28) and yt.shape == (10000,)
    assert np.bincount(yt).tolist() == [1000] * 10
    S, sy = nnx.data.fashion_mnist_sample("test")
    # Every sample image occurs in the full test set with the same label.
    keys = {Xt[i].tobytes(): yt[i] for i in range(len(Xt))}
    assert all(keys[S[i].tobytes()] == sy[i] for i in range(0, len(S), 37))


# --- DataLoader ---------------------------------------------------------------------------------------

def test_loader_batches_cover_everything_in_order():
    X = np.arange(10 * 3).reshape(10, 3)
    y = np.arange(10)
    dl = nnx.data.DataLoader(X, y, batch_size=4)
    batches = list(dl)
    assert len(dl) == 3 and [len(b[1]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), X)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
    batches[0][0][:] = -1  # batches are copies
    assert X.min() == 0
    dl = nnx.data.DataLoader(X, y, batch_size=4, drop_last=True)
    assert len(dl) == 2 and [len(b[1]) for b in dl] == [4, 4]
    assert len(nnx.data.DataLoader(X, batch_size=20, drop_last=True)) == 0
    assert len(list(nnx.data.DataLoader(X[:0], y[:0]))) == 0


def test_loader_shuffle_is_a_permutation_and_seeded():
    X = np.arange(50)
    y = X * 10
    nnx.manual_seed(3)
    first = list(nnx.data.DataLoader(X, y, batch_size=7, shuffle=True))
    xs = np.concatenate([b[0] for b in first])
    assert sorted(xs.tolist()) == list(range(50)) and not np.array_equal(xs, X)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in first]), xs * 10)  # pairs stay together
    nnx.manual_seed(3)
    again = np.concatenate([b[0] for b in nnx.data.DataLoader(X, y, batch_size=7, shuffle=True)])
    np.testing.assert_array_equal(xs, again)
    # Each pass draws a new order; the RNG state captures where the stream is.
    dl = nnx.data.DataLoader(X, y, batch_size=50, shuffle=True)
    nnx.manual_seed(3)
    p1 = next(iter(dl))[0]
    state = nnx.random.get_rng_state()
    p2 = next(iter(dl))[0]
    assert not np.array_equal(p1, p2)
    nnx.random.set_rng_state(state)
    np.testing.assert_array_equal(next(iter(dl))[0], p2)


def test_loader_transform_and_x_only():
    X = np.full((5, 28, 28), 255, np.uint8)
    dl = nnx.data.DataLoader(X, batch_size=2, transform=nnx.data.to_float_images)
    xb = next(iter(dl))
    assert xb.shape == (2, 1, 28, 28) and xb.dtype == np.float32 and np.all(xb == 1.0)


@pytest.mark.parametrize("kwargs, exc, message", [
    (dict(y=np.zeros(3)), ValueError, "y: expected 4 samples"),
    (dict(batch_size=0), ValueError, "batch_size: expected a positive int, got 0"),
    (dict(batch_size=2.5), TypeError, "batch_size: expected a positive int, got 2.5"),
    (dict(transform=3), TypeError, "transform: expected a callable"),
])
def test_loader_bad_arguments(kwargs, exc, message):
    with pytest.raises(exc, match=message):
        nnx.data.DataLoader(np.zeros((4, 2)), **kwargs)


# --- transforms ---------------------------------------------------------------------------------------

def test_to_float_images():
    imgs = np.array([[[0, 51], [102, 255]]], np.uint8)
    x = nnx.data.to_float_images(imgs)
    assert x.shape == (1, 1, 2, 2) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0], [[0, 0.2], [0.4, 1.0]], rtol=1e-6)
    z = nnx.data.to_float_images(imgs, mean=0.5, std=0.25)
    np.testing.assert_allclose(z[0, 0], [[-2, -1.2], [-0.4, 2.0]], rtol=1e-5)
    with pytest.raises(ValueError, match=r"images: expected shape \(N, H, W\)"):
        nnx.data.to_float_images(np.zeros((2, 2)))


def test_standardize_fits_on_train_only():
    rng = np.random.default_rng(0)
    train = rng.normal(3.0, 2.0, (500, 4)).astype(np.float32)
    train[:, 3] = 7.0  # constant feature: centred, not divided by zero
    test = rng.normal(3.0, 2.0, (100, 4)).astype(np.float32)
    a, b = nnx.data.standardize(train, test)
    assert a.dtype == np.float32 and b.shape == test.shape
    np.testing.assert_allclose(a.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(a[:, :3].std(0), 1, rtol=1e-4)
    assert np.all(a[:, 3] == 0)
    s = nnx.data.Standardize().fit(train)
    np.testing.assert_allclose(b, (test - train.mean(0)) / np.where(train.std(0) > 0, train.std(0), 1), rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_array_equal(s(test), b)
    with pytest.raises(ValueError, match=r"X: expected samples of shape \(4,\)"):
        s.transform(np.zeros((2, 5)))
    with pytest.raises(RuntimeError, match="before fit"):
        nnx.data.Standardize().transform(train)


def test_pca_whiten_gives_identity_covariance():
    rng = np.random.default_rng(0)
    mix = rng.standard_normal((6, 6))
    train = rng.standard_normal((2000, 6)) @ mix + 5
    test = rng.standard_normal((10, 6)) @ mix + 5
    w, wt = nnx.data.pca_whiten(train, test, epsilon=0.0)
    np.testing.assert_allclose(np.cov(w, rowvar=False), np.eye(6), atol=1e-8)
    p = nnx.data.PCAWhiten(n_components=3, epsilon=1e-5).fit(train)
    assert p.transform(test).shape == (10, 3)
    assert np.all(np.diff(p.explained_variance) <= 0)
    # ZCA keeps the input's layout and is symmetric whitening.
    imgs = (rng.standard_normal((300, 2, 2)) @ np.array([[1.0, 0.9], [0.0, 0.4]])).astype(np.float32)
    z = nnx.data.PCAWhiten(epsilon=0.0, zca=True).fit_transform(imgs)
    assert z.shape == imgs.shape and z.dtype == np.float32
    np.testing.assert_allclose(np.cov(z.reshape(300, -1), rowvar=False), np.eye(4), atol=1e-4)
    with pytest.raises(ValueError, match="n_components: expected 1 to 6, got 7"):
        nnx.data.PCAWhiten(n_components=7).fit(train)
