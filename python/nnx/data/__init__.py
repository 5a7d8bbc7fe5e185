"""nnx.data: data sets (MNIST, Fashion-MNIST and a shipped Fashion-MNIST sample), the IDX reader,
mini-batch loading and input transforms."""
from .datasets import (FASHION_MNIST_CLASSES, MNIST_CLASSES, fashion_mnist, fashion_mnist_sample,  # noqa: F401
                       mnist)
from .augment import (Compose, Cutout, RandomCrop, RandomHorizontalFlip, RandomTranslate, mixup,  # noqa: F401
                      mixup_loss)
from .idx import load_idx, save_idx  # noqa: F401
from .loader import DataLoader  # noqa: F401
from .transforms import PCAWhiten, Standardize, pca_whiten, standardize, to_float_images  # noqa: F401

__all__ = ["load_idx", "save_idx", "fashion_mnist", "mnist", "fashion_mnist_sample", "FASHION_MNIST_CLASSES",
           "MNIST_CLASSES", "DataLoader", "to_float_images", "Standardize", "standardize", "PCAWhiten",
           "pca_whiten", "Compose", "RandomCrop", "RandomHorizontalFlip", "RandomTranslate", "Cutout", "mixup",
           "mixup_loss"]
