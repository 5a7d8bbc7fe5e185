"""nnx.optim: optimizers with PyTorch's semantics; the update loops run in C++ (cpp/optim)."""
from . import lr_scheduler  # noqa: F401
from .adagrad import Adadelta, Adagrad
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "lr_scheduler"]
