"""Module and Parameter: the PyTorch-shaped base of every layer.

A Module finds its parameters, buffers and sub-modules by walking its attributes (a Parameter, a Module,
or a list/tuple of them), so layers never keep hand-written lists and state_dict keys are the dotted
attribute paths ("0.weight", "block.bn.running_mean"), in PyTorch's order: a module's own parameters,
then its buffers, then its children.
"""
from __future__ import annotations

from collections import OrderedDict, namedtuple
from typing import Iterator

import numpy as np

from .. import _capture
from .. import anomaly as _anomaly
from ..tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module owns and an optimizer updates (requires_grad=True by default)."""

    def __init__(self, data, requires_grad: bool = True, dtype=None):
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class StateDictError(KeyError, ValueError):
    """load_state_dict found missing keys, unexpected keys or mismatched shapes/dtypes. A KeyError for the
    keys, and a ValueError as well, since a shape or dtype mismatch is a bad value."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


# Bumped whenever a module attribute that can hold parameters is assigned (see Module.__setattr__).
_structure = [0]


class Module:
    """Base class of layers and models: override forward(); call the module to run it."""

    def __init__(self):
        self.training = True
        self._buffer_names: list = []

    # ----------------------------------------------------------------- what the module holds
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__}.forward is not implemented")

    def __call__(self, *args, **kwargs):
        # Floating ndarray inputs are converted to the module's dtype (float64 data into a float32 model);
        # Tensors are taken as they are. Inner modules receive Tensors, so the parameter walk that finds
        # the dtype runs only for the outermost call.
        for a in args:
            if isinstance(a, np.ndarray) and a.dtype.kind == "f":
                dtype = self._param_dtype()
                if dtype is not None:
                    args = tuple(a.astype(dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f" and a.dtype != dtype
                                 else a for a in args)
                break
        rec = _capture.current()
        if rec is not None:  # nnx.compile: this module's parameters and buffers are step state
            rec.add_module(self)
        if _anomaly.active:  # anomaly mode names the calling module, so it keeps a module call stack
            return _anomaly.call_module(self, args, kwargs)
        return self.forward(*args, **kwargs)

    def __setattr__(self, name, value):
        # Assigning a module, parameter or list may change which parameter _param_dtype finds first.
        if isinstance(value, (Module, Parameter, list, tuple)):
            _structure[0] += 1
        object.__setattr__(self, name, value)

    def _param_dtype(self):
        """The dtype of the first parameter found (own ones first, then depth-first in the children), or
        None. Which parameter that is, is remembered until a module, parameter or list attribute is assigned
        anywhere (the walk costs more than the ops of a batch-1 step); its dtype is read afresh each time."""
        cached = self.__dict__.get("_first_param")
        if cached is None or cached[0] != _structure[0]:
            cached = self.__dict__["_first_param"] = (_structure[0], self._find_first_param())
        p = cached[1]
        return None if p is None else p.dtype

    def _find_first_param(self):
        children = []
        for _, value in self._members():
            if isinstance(value, Parameter):
                return value
            children.append(value)
        for c in children:
            p = c._find_first_param()
            if p is not None:
                return p
        return None

    def register_buffer(self, name: str, value) -> None:
        """A non-trainable array saved in the state_dict (e.g. BatchNorm's running statistics)."""
        if "_buffer_names" not in self.__dict__:
            self._buffer_names = []
        if name not in self._buffer_names:
            self._buffer_names.append(name)
        setattr(self, name, None if value is None else np.asarray(value))

    def _members(self):
        """(name, value) of the attributes that may hold parameters or modules, lists expanded."""
        for name, value in vars(self).items():
            if name.startswith("_") and name != "_layers":
                continue
            if isinstance(value, (list, tuple)):
                for i, item in enumerate(value):
                    if isinstance(item, (Module, Parameter)):
                        yield (str(i) if name == "_layers" else f"{name}.{i}"), item
            elif isinstance(value, (Module, Parameter)):
                yield name, value

    def named_children(self) -> Iterator:
        for name, value in self._members():
            if isinstance(value, Module):
                yield name, value

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = "", _seen=None) -> Iterator:
        seen = set() if _seen is None else _seen
        if id(self) in seen:
            return
        seen.add(id(self))
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name, seen)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def _own_parameters(self):
        for name, value in self._members():
            if isinstance(value, Parameter):
                yield name, value

    def _own_buffers(self):
        for name in self.__dict__.get("_buffer_names", ()):
            yield name, getattr(self, name)

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator:
        """(dotted name, Parameter), each shared parameter once."""
        seen = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mprefix, m in mods:
            for name, p in m._own_parameters():
                if id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mprefix}.{name}" if mprefix else name), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "") -> Iterator:
        for mprefix, m in self.named_modules(prefix):
            for name, b in m._own_buffers():
                if b is not None:
                    yield (f"{mprefix}.{name}" if mprefix else name), b

    def buffers(self) -> Iterator[np.ndarray]:
        for _, b in self.named_buffers():
            yield b

    # ----------------------------------------------------------------- modes and gradients
    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            m.training = bool(mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad.fill(0)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Sets requires_grad on every parameter (False freezes the module, e.g. pretrained layers)."""
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def apply(self, fn) -> "Module":
        """Calls fn(module) on every sub-module, children first, then on self (as torch's apply); e.g.
        model.apply(init_fn) to re-initialise every Linear."""
        if not callable(fn):
            raise TypeError(f"fn: expected a callable taking a module, got {type(fn).__name__}")
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def to(self, dtype) -> "Module":
        """Converts parameters and floating-point buffers to `dtype` (np.float32 or np.float64)."""
        dtype = np.dtype(dtype)
        if dtype.kind != "f":
            raise TypeError(f"dtype: expected a floating-point dtype, got {dtype}")
        for p in self.parameters():
            if p.dtype != dtype:
                p.data = p.data.astype(dtype)
                p.grad = None
        for m in self.modules():
            for name, b in m._own_buffers():
                if b is not None and b.dtype.kind == "f" and b.dtype != dtype:
                    setattr(m, name, b.astype(dtype))
        return self

    def double(self) -> "Module":
        return self.to(np.float64)

    def float(self) -> "Module":
        return self.to(np.float32)

    # ----------------------------------------------------------------- state dict
    def _state_entries(self):
        """OrderedDict dotted name -> (module, attribute or Parameter) in PyTorch's key order."""
        entries = OrderedDict()
        seen = set()
        for mprefix, m in self.named_modules():
            pre = f"{mprefix}." if mprefix else ""
            for name, p in m._own_parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    entries[pre + name] = p
            for name, b in m._own_buffers():
                if b is not None:
                    entries[pre + name] = (m, name)
        return entries

    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Copies of every parameter and buffer, keyed by dotted attribute path."""
        sd = OrderedDict()
        for key, entry in self._state_entries().items():
            value = entry.data if isinstance(entry, Parameter) else getattr(*entry)
            sd[key] = np.array(value, copy=True)
        return sd

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copies the arrays of `state_dict` into the parameters and buffers (in place).

        Raises StateDictError naming missing and unexpected keys (when strict) and any key whose shape or
        dtype differs from the model's (always). Returns (missing_keys, unexpected_keys).
        """
        entries = self._state_entries()
        missing = [k for k in entries if k not in state_dict]
        unexpected = [k for k in state_dict if k not in entries]
        problems = []
        for key, entry in entries.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            value = value.data if isinstance(value, Tensor) else np.asarray(value)
            current = entry.data if isinstance(entry, Parameter) else getattr(*entry)
            if value.shape != current.shape:
                problems.append(f"size mismatch for {key!r}: checkpoint has shape {value.shape}, "
                                f"the model has {current.shape}")
            elif value.dtype != current.dtype:
                problems.append(f"dtype mismatch for {key!r}: checkpoint has {value.dtype}, the model has "
                                f"{current.dtype} (convert the model with .float()/.double() first)")
        if strict:
            if missing:
                problems.insert(0, "missing keys: " + ", ".join(repr(k) for k in missing))
            if unexpected:
                problems.insert(1 if missing else 0, "unexpected keys: " + ", ".join(repr(k) for k in unexpected))
        if problems:
            raise StateDictError(f"Error(s) in loading state_dict for {type(self).__name__}:\n  "
                                 + "\n  ".join(problems))
        for key, entry in entries.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            value = value.data if isinstance(value, Tensor) else np.asarray(value)
            if isinstance(entry, Parameter):
                if entry.data.flags.writeable:
                    np.copyto(entry.data, value)
                else:
                    entry.data = np.array(value, copy=True)
            else:
                m, name = entry
                current = getattr(m, name)
                if current.flags.writeable and current.ndim > 0:
                    np.copyto(current, value)
                else:
                    setattr(m, name, np.array(value, copy=True))
        return IncompatibleKeys(missing, unexpected)

    # ----------------------------------------------------------------- printing
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        children = list(self.named_children())
        if not children:
            return f"{type(self).__name__}({extra})"
        lines = [extra] if extra else []
        for name, child in children:
            lines.append(f"({name}): " + repr(child).replace("\n", "\n  "))
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"
