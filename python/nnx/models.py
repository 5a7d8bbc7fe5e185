"""Ready-made networks for 28x28 single-channel images (MNIST, Fashion-MNIST), 10 classes by default."""
from __future__ import annotations

from . import nn
from .rbm import RBM  # noqa: F401
from .tensor import Tensor


def mlp(hidden=(256, 128), in_features: int = 28 * 28, num_classes: int = 10, dropout: float = 0.0):
    """Flatten, then Linear + ReLU for each size in `hidden` (with Dropout(dropout) after each when
    dropout > 0), then a Linear to `num_classes` logits."""
    layers = [nn.Flatten()]
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, int(h)), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = int(h)
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def lenet5(num_classes: int = 10):
    """LeNet-5 with ReLU and max pooling (the model of DESIGN.md): conv5x5-6 pad 2, pool 2, conv5x5-16,
    pool 2, fc 400-120-84-num_classes. About 62k parameters."""
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, num_classes))


def convnet(num_classes: int = 10, dropout: float = 0.4):
    """The network of TensorFlow's "Build a Convolutional Neural Network using Estimators" tutorial:
    conv5x5-32 pad 2 + ReLU, max pool 2, conv5x5-64 pad 2 + ReLU, max pool 2, flatten, fc 3136-1024 +
    ReLU, dropout 0.4, fc 1024-num_classes. About 3.3M parameters."""
    return nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(7 * 7 * 64, 1024), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(1024, num_classes))


def convnet_bn(num_classes: int = 10):
    """The "2 Conv+pooling+BN" network of the Fashion-MNIST benchmark table: conv5x5-32 pad 2 + BatchNorm +
    ReLU, max pool 2, conv5x5-64 pad 2 + BatchNorm + ReLU, max pool 2, flatten, fc 3136-256 + BatchNorm1d
    + ReLU, fc 256-num_classes. The layers before a BatchNorm have no bias (its shift takes that role).
    About 0.86M parameters."""
    return nn.Sequential(nn.Conv2d(1, 32, 5, padding=2, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 5, padding=2, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(7 * 7 * 64, 256, bias=False), nn.BatchNorm1d(256), nn.ReLU(),
                         nn.Linear(256, num_classes))


class RowSequenceClassifier(nn.Module):
    """Reads a 28x28 image row by row (28 steps of 28 pixels) with a recurrent layer (mode 'rnn', 'lstm'
    or 'gru') and classifies from the output of the last step with a Linear layer."""

    def __init__(self, mode: str = "lstm", input_size: int = 28, hidden_size: int = 128, num_classes: int = 10,
                 num_layers: int = 1):
        super().__init__()
        layer = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[mode]
        self.rnn = layer(input_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.ndim == 4:  # (N, 1, rows, cols) images
            x = x.reshape((x.shape[0], x.shape[2], x.shape[3]))
        y, _ = self.rnn(x)
        return self.fc(y[:, -1])


class CharLM(nn.Module):
    """A character-level language model: Embedding(vocab, embed) -> recurrent layer(s) -> Linear(hidden,
    vocab) on every step. forward(ids (N, T), state=None) returns (logits (N, T, vocab), state)."""

    def __init__(self, vocab_size: int, embed_size: int = 64, hidden_size: int = 256, mode: str = "lstm",
                 num_layers: int = 1, dropout: float = 0.0):
        super().__init__()
        layer = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[mode]
        self.mode = mode
        self.embed = nn.Embedding(vocab_size, embed_size)
        self.rnn = layer(embed_size, hidden_size, num_layers=num_layers, batch_first=True, dropout=dropout)
        self.fc = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids, state=None):
        y, state = self.rnn(self.embed(ids), state)
        return self.fc(y), state


def row_lstm(num_classes: int = 10, hidden_size: int = 128):
    """LSTM(28 -> hidden_size) over the rows of a 28x28 image, Linear on the last step."""
    return RowSequenceClassifier("lstm", 28, hidden_size, num_classes)


def row_gru(num_classes: int = 10, hidden_size: int = 128):
    """GRU(28 -> hidden_size) over the rows of a 28x28 image, Linear on the last step."""
    return RowSequenceClassifier("gru", 28, hidden_size, num_classes)


def row_rnn(num_classes: int = 10, hidden_size: int = 128):
    """tanh RNN(28 -> hidden_size) over the rows of a 28x28 image, Linear on the last step."""
    return RowSequenceClassifier("rnn", 28, hidden_size, num_classes)


MODELS = {"mlp": mlp, "lenet5": lenet5, "convnet": convnet, "convnet_bn": convnet_bn,
          "lstm": row_lstm, "gru": row_gru, "rnn": row_rnn}


def build(name: str, **kwargs):
    """The model called `name` (a key of MODELS)."""
    if name not in MODELS:
        raise ValueError(f"name: expected one of {sorted(MODELS)}, got {name!r}")
    return MODELS[name](**kwargs)
