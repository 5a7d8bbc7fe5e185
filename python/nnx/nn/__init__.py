"""nnx.nn: modules and layers with PyTorch's names, shapes and default initialisation."""
from . import init, utils  # noqa: F401
from .containers import ModuleList, Sequential
from .layers import (ELU, Add, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Flatten, GlobalAvgPool2d,
                     Identity, LayerNorm, LeakyReLU, Linear, LogSoftmax, LPPool2d, MaxPool2d, ReLU, Residual,
                     Sigmoid, Softmax, Tanh)
from .loss import (BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, KLDivLoss, L1Loss, MSELoss, MultiClassHingeLoss,
                   NLLLoss, SmoothL1Loss)
from .maxout import ChannelMaxout, Maxout
from .module import IncompatibleKeys, Module, Parameter, StateDictError
from .recurrent import GRU, LSTM, RNN, Embedding, GRUCell, LSTMCell, RNNCell

__all__ = ["init", "Module", "Parameter", "StateDictError", "IncompatibleKeys", "Sequential", "ModuleList",
           "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "LPPool2d", "GlobalAvgPool2d", "Flatten", "ReLU",
           "Sigmoid", "Tanh", "LeakyReLU", "ELU", "Softmax", "LogSoftmax", "Dropout", "BatchNorm1d",
           "BatchNorm2d", "LayerNorm", "Residual", "Add", "Identity", "CrossEntropyLoss", "MSELoss", "BCEWithLogitsLoss",
           "MultiClassHingeLoss", "NLLLoss", "L1Loss", "SmoothL1Loss", "HuberLoss", "KLDivLoss",
           "Maxout", "ChannelMaxout", "utils", "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell",
           "Embedding"]
