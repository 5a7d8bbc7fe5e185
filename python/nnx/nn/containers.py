"""Sequential and ModuleList."""
from __future__ import annotations

from .layers import BatchNorm2d, Conv2d, LeakyReLU, Linear, MaxPool2d, ReLU, Sigmoid, Tanh, _BatchNorm
from .module import Module, _structure

# Activations that GEMM/conv can apply in their epilogue while the output tile is still in cache.
_FUSABLE = (ReLU, Sigmoid, Tanh, LeakyReLU)


class ModuleList(Module):
    """A list of modules whose parameters are registered as "0.weight", "1.bias", ..."""

    def __init__(self, modules=()):
        super().__init__()
        self._layers = list(modules)
        for m in self._layers:
            if not isinstance(m, Module):
                raise TypeError(f"modules: expected nnx.nn.Module instances, got {type(m).__name__}")

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self._from_list(self._layers[i])
        return self._layers[i]

    def _from_list(self, modules):
        return ModuleList(modules)

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self):
        return iter(self._layers)

    def append(self, module: Module):
        if not isinstance(module, Module):
            raise TypeError(f"module: expected an nnx.nn.Module, got {type(module).__name__}")
        self._layers.append(module)
        _structure[0] += 1
        return self


class Sequential(ModuleList):
    """Runs its modules in order. A Linear or Conv2d directly followed by ReLU, Sigmoid, Tanh or LeakyReLU
    runs as one fused op (bias and activation applied by the kernel's epilogue) with the same result, and
    so does a BatchNorm directly followed by ReLU (one pass writes relu(bn(x))). Conv2d or BatchNorm2d,
    then ReLU, then MaxPool2d (without padding) runs as the convolution or normalization, then the pooling
    with the ReLU applied to its output: the same values (relu commutes with the maximum), and the backward
    reads the ReLU's mask on the pooled array, a quarter of the layer's output for 2x2. A Conv2d's output is
    then pooled image by image as it is computed, never stored (F.conv2d_max_pool2d). Set `fuse = False`
    on an instance to run every module separately."""

    fuse = True

    def __init__(self, *modules):
        super().__init__(modules)

    def _from_list(self, modules):
        seq = Sequential(*modules)
        seq.fuse = self.fuse
        return seq

    def forward(self, x):
        layers = self._layers
        i = 0
        while i < len(layers):
            m = layers[i]
            nxt = layers[i + 1] if i + 1 < len(layers) else None
            if (self.fuse and type(m) in (Conv2d, BatchNorm2d) and type(nxt) is ReLU and i + 2 < len(layers)
                    and type(layers[i + 2]) is MaxPool2d and layers[i + 2].padding in (0, (0, 0))):
                pool = layers[i + 2]
                if type(m) is Conv2d and pool.dilation in (1, (1, 1)):
                    x = m(x, activation="relu", pool=(pool.kernel_size, pool.stride))
                else:
                    x = pool(m(x), activation="relu")
                i += 3
            elif self.fuse and type(m) in (Linear, Conv2d) and type(nxt) in _FUSABLE:
                slope = getattr(nxt, "negative_slope", 0.01)
                x = m(x, activation=nxt.fused_activation, negative_slope=slope)
                i += 2
            elif self.fuse and isinstance(m, _BatchNorm) and type(nxt) is ReLU:
                x = m(x, activation="relu")
                i += 2
            else:
                x = m(x)
                i += 1
        return x
