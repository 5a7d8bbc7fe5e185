"""Former home of the argument checks, now nnx._args (pure Python, shared with nnx.reference)."""
from .._args import *  # noqa: F401,F403
