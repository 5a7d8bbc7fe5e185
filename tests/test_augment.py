"""nnx.data augmentation: each transform against a per-image NumPy loop that replays the same random
draws, reproducibility under nnx.manual_seed, DataLoader use and the --augment flag."""
import numpy as np
import pytest

import nnx
from nnx.data import augment as A


def batch(n=6, c=None, h=7, w=9, dtype=np.uint8, seed=0):
    r = np.random.default_rng(seed)
    shape = (n, h, w) if c is None else (n, c, h, w)
    return (r.integers(1, 255, size=shape)).astype(dtype)


def replay(n):
    """A generator in the state nnx.random had before the transform drew (seeded 0 below)."""
    return np.random.default_rng(0)


@pytest.mark.parametrize("c", [None, 3])
@pytest.mark.parametrize("size, padding", [(7, 2), (5, 0), ((4, 6), 1)])
def test_random_crop_against_loop(c, size, padding):
    x = batch(c=c)
    nnx.manual_seed(0)
    out = A.RandomCrop(size, padding=padding)(x)
    h, w = (size, size) if isinstance(size, int) else size
    r = replay(len(x))
    H, W = x.shape[-2] + 2 * padding, x.shape[-1] + 2 * padding
    top = r.integers(0, H - h + 1, size=len(x))
    left = r.integers(0, W - w + 1, size=len(x))
    for i in range(len(x)):
        img = np.zeros(x.shape[1:-2] + (H, W), x.dtype)
        img[..., padding:padding + x.shape[-2], padding:padding + x.shape[-1]] = x[i]
        np.testing.assert_array_equal(out[i], img[..., top[i]:top[i] + h, left[i]:left[i] + w])
    assert out.dtype == x.dtype and out.shape == x.shape[:-2] + (h, w)


def test_translate_keeps_size_and_content_moves():
    x = batch(n=50, h=8, w=8)
    nnx.manual_seed(1)
    out = A.RandomTranslate(2)(x)
    assert out.shape == x.shape
    shifted = 0
    for i in range(len(x)):  # each output is the input shifted by some (dy, dx) in [-2, 2]^2, zero-filled
        found = False
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                ref = np.zeros_like(x[i])
                src = x[i][max(0, dy):8 + min(0, dy), max(0, dx):8 + min(0, dx)]
                ref[max(0, -dy):8 + min(0, -dy), max(0, -dx):8 + min(0, -dx)] = src
                if np.array_equal(ref, out[i]):
                    found, shifted = True, shifted + ((dy, dx) != (0, 0))
        assert found
    assert shifted > 30  # 24 of 25 shifts move the image


def test_flip_against_loop_and_probability():
    x = batch(n=400, c=2, dtype=np.float32)
    nnx.manual_seed(0)
    out = A.RandomHorizontalFlip(0.5)(x)
    flip = replay(len(x)).random(len(x)) < 0.5
    for i in range(len(x)):
        np.testing.assert_array_equal(out[i], x[i][..., ::-1] if flip[i] else x[i])
    assert 150 < flip.sum() < 250
    np.testing.assert_array_equal(A.RandomHorizontalFlip(0.0)(x), x)
    np.testing.assert_array_equal(A.RandomHorizontalFlip(1.0)(x), x[..., ::-1])


@pytest.mark.parametrize("c", [None, 2])
def test_cutout_against_loop(c):
    x = batch(n=20, c=c, h=10, w=12)
    nnx.manual_seed(0)
    out = A.Cutout(4, p=0.7)(x)
    r = replay(len(x))
    cy, cx, on = r.integers(0, 10, size=20), r.integers(0, 12, size=20), r.random(20) < 0.7
    for i in range(20):
        ref = x[i].copy()
        if on[i]:
            ref[..., max(0, cy[i] - 2):cy[i] + 2, max(0, cx[i] - 2):cx[i] + 2] = 0
        np.testing.assert_array_equal(out[i], ref)


def test_mixup():
    x = batch(n=8, dtype=np.float32)
    y = np.arange(8)
    nnx.manual_seed(0)
    xm, ya, yb, lam = A.mixup(x, y, alpha=0.4)
    r = replay(8)
    lam_ref = r.beta(0.4, 0.4)
    perm = r.permutation(8)
    assert lam == pytest.approx(lam_ref) and np.array_equal(yb, perm) and np.array_equal(ya, y)
    np.testing.assert_allclose(xm, lam * x + (1 - lam) * x[perm], rtol=1e-6)
    logits = nnx.Tensor(np.random.default_rng(1).standard_normal((8, 8)).astype(np.float32))
    ce = nnx.nn.CrossEntropyLoss()
    want = lam * ce(logits, ya).item() + (1 - lam) * ce(logits, yb).item()
    assert A.mixup_loss(ce, logits, ya, yb, lam).item() == pytest.approx(want, rel=1e-6)
    with pytest.raises(TypeError, match="floating"):
        A.mixup(batch(), np.arange(6))
    with pytest.raises(ValueError, match="alpha"):
        A.mixup(x, y, alpha=0)


def test_reproducible_and_dataloader():
    X, y = batch(n=40, h=28, w=28), np.arange(40)
    aug = A.Compose([A.RandomCrop(28, padding=2), A.RandomHorizontalFlip(), A.Cutout(8),
                     nnx.data.to_float_images])
    runs = []
    for _ in range(2):
        nnx.manual_seed(5)
        runs.append([xb for xb, _ in nnx.data.DataLoader(X, y, batch_size=16, shuffle=True, transform=aug)])
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    assert runs[0][0].dtype == np.float32 and runs[0][0].shape == (16, 1, 28, 28)


def test_errors():
    with pytest.raises(ValueError, match="x"):
        A.RandomCrop(3)(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="size"):
        A.RandomCrop(10)(np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match="padding"):
        A.RandomCrop(3, padding=-1)
    with pytest.raises(ValueError, match="p"):
        A.RandomHorizontalFlip(2)
    with pytest.raises(ValueError, match="augment"):
        A.build_augmentation("crop,rotate")
    assert len(A.build_augmentation("crop, flip,cutout").transforms) == 3


def test_cli_augment(tmp_path, capsys):
    from nnx.__main__ import main
    out = tmp_path / "run"
    rc = main(["train", "--model", "mlp", "--dataset", "sample", "--epochs", "1", "--limit", "500",
               "--augment", "crop,flip,translate,cutout", "--out", str(out), "--no-progress"])
    assert rc == 0 and (out / "result.json").is_file()
    import json
    assert json.load(open(out / "result.json"))["augment"] == "crop,flip,translate,cutout"
    with pytest.raises(SystemExit):
        main(["train", "--augment", "spin", "--out", str(out)])
    assert "--augment" in capsys.readouterr().err


def test_cli_resume_refuses_other_augmentation(tmp_path, capsys):
    from nnx.__main__ import main
    out = tmp_path / "run"
    common = ["train", "--model", "mlp", "--dataset", "sample", "--limit", "300", "--out", str(out), "--no-progress",
              "--schedule", "constant"]
    assert main(common + ["--epochs", "1", "--augment", "flip"]) == 0
    assert main(common + ["--epochs", "2", "--resume"]) == 1  # no --augment now: different settings
    assert "augment" in capsys.readouterr().err
    assert main(common + ["--epochs", "2", "--resume", "--augment", "flip"]) == 0
