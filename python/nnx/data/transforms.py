"""Input transforms: image scaling, per-feature standardisation and PCA whitening.

Statistics are always fitted on the training set and then applied unchanged to the test set, so no
information about the test set leaks into training.
"""
from __future__ import annotations

import numpy as np


def _float(X, name="X"):
    X = np.asarray(X)
    if X.dtype.kind not in "fiub":
        raise TypeError(f"{name}: expected a numeric array, got dtype {X.dtype}")
    return X.astype(np.float64 if X.dtype == np.float64 else np.float32, copy=False)


def to_float_images(images, mean=None, std=None):
    """uint8 images (N, H, W) or (N, C, H, W) -> float32 (N, C, H, W) scaled to [0, 1]; then, when
    mean/std are given (in [0, 1] units, e.g. 0.2860, 0.3530 for Fashion-MNIST), standardised as
    (x - mean) / std. Usable directly as a DataLoader transform."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim != 4:
        raise ValueError(f"images: expected shape (N, H, W) or (N, C, H, W), got {images.shape}")
    x = images.astype(np.float32)
    if images.dtype == np.uint8:
        x *= np.float32(1 / 255)
    if mean is not None:
        x -= np.float32(mean)
    if std is not None:
        if not np.all(np.asarray(std) > 0):
            raise ValueError(f"std: expected a positive value, got {std}")
        x /= np.float32(std)
    return x


class Standardize:
    """Per-feature standardisation: x -> (x - mean) / std, with mean and std fitted on training data.

    Features whose std is below eps (constant pixels at the border of an image, say) are only centred.
    """

    def __init__(self, eps: float = 1e-8):
        self.eps = float(eps)
        self.mean = self.std = None

    def fit(self, X):
        X = _float(X)
        if X.ndim < 1 or X.shape[0] == 0:
            raise ValueError(f"X: expected at least one sample to fit on, got shape {X.shape}")
        X64 = X.astype(np.float64)
        self.mean = X64.mean(axis=0)
        std = X64.std(axis=0)
        self.std = np.where(std < self.eps, 1.0, std)
        return self

    def transform(self, X):
        if self.mean is None:
            raise RuntimeError("Standardize.transform called before fit")
        X = _float(X)
        if X.shape[1:] != self.mean.shape:
            raise ValueError(f"X: expected samples of shape {self.mean.shape} as in fit, got {X.shape[1:]}")
        return ((X - self.mean) / self.std).astype(X.dtype)

    def fit_transform(self, X):
        return self.fit(X).transform(X)

    __call__ = transform


def standardize(train, *others, eps: float = 1e-8):
    """Fits a Standardize on `train` and applies it to train and every array in `others`.

    Returns a tuple (train_std, *others_std)."""
    s = Standardize(eps).fit(train)
    return tuple(s.transform(a) for a in (train,) + others)


class PCAWhiten:
    """PCA whitening fitted on training data: x -> (x - mean) U_k / sqrt(lambda_k + epsilon), where U_k
    holds the top-k eigenvectors of the covariance and lambda_k their eigenvalues. Samples are flattened
    to vectors. With zca=True the result is rotated back (x_pca U_k^T), keeping the input's layout:
    ZCA whitening, whose outputs still look like images.

    epsilon regularises the small-variance directions (without it, noise there is blown up).
    """

    def __init__(self, n_components=None, epsilon: float = 1e-5, zca: bool = False):
        self.n_components = n_components
        self.epsilon = float(epsilon)
        self.zca = bool(zca)
        self.mean = self.components = self.scale = None
        self._shape = None

    def fit(self, X):
        X = _float(X)
        if X.ndim < 2 or X.shape[0] < 2:
            raise ValueError(f"X: expected at least 2 samples with features, got shape {X.shape}")
        if self.epsilon < 0:
            raise ValueError(f"epsilon: expected a non-negative number, got {self.epsilon}")
        self._shape = X.shape[1:]
        flat = X.reshape(X.shape[0], -1).astype(np.float64)
        d = flat.shape[1]
        k = d if self.n_components is None else int(self.n_components)
        if not 1 <= k <= d:
            raise ValueError(f"n_components: expected 1 to {d}, got {self.n_components}")
        self.mean = flat.mean(axis=0)
        centred = flat - self.mean
        cov = centred.T @ centred / (flat.shape[0] - 1)
        eigval, eigvec = np.linalg.eigh(cov)
        order = np.argsort(eigval)[::-1][:k]
        eigval, eigvec = np.clip(eigval[order], 0, None), eigvec[:, order]
        # Fix each eigenvector's sign (largest entry positive) so fits are reproducible across LAPACKs.
        signs = np.sign(eigvec[np.abs(eigvec).argmax(axis=0), np.arange(k)])
        eigvec *= np.where(signs == 0, 1, signs)
        self.components = eigvec                         # (d, k)
        self.explained_variance = eigval
        self.scale = 1.0 / np.sqrt(eigval + self.epsilon)
        if not np.all(np.isfinite(self.scale)):
            raise ValueError("epsilon: zero-variance directions need epsilon > 0")
        return self

    def transform(self, X):
        if self.mean is None:
            raise RuntimeError("PCAWhiten.transform called before fit")
        X = _float(X)
        if X.shape[1:] != self._shape:
            raise ValueError(f"X: expected samples of shape {self._shape} as in fit, got {X.shape[1:]}")
        flat = X.reshape(X.shape[0], -1).astype(np.float64) - self.mean
        out = (flat @ self.components) * self.scale
        if self.zca:
            out = (out @ self.components.T).reshape(X.shape)
        return out.astype(X.dtype)

    def fit_transform(self, X):
        return self.fit(X).transform(X)

    __call__ = transform


def pca_whiten(train, *others, n_components=None, epsilon: float = 1e-5, zca: bool = False):
    """Fits a PCAWhiten on `train` and applies it to train and every array in `others`.

    Returns a tuple (train_white, *others_white)."""
    p = PCAWhiten(n_components, epsilon, zca).fit(train)
    return tuple(p.transform(a) for a in (train,) + others)
