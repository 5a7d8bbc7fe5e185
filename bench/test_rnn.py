"""Recurrent training steps: nnx, nnx on its NumPy reference (the two small cases only), and PyTorch, one
pytest-benchmark group per case of bench/rnn_step_ab.py (which states the cases and how FLOPs are
counted). Each framework is timed in its own window here; for ratios measured under the same load, run
the interleaved bench/rnn_step_ab.py.

    python -m pytest bench/test_rnn.py --benchmark-only --threads 1
"""
import pytest

import nnx
from conftest import record
from rnn_step_ab import CASES, case_flops, nnx_step, torch_step

IMPLS = ["nnx", "reference", "torch"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("name", list(CASES))
def test_rnn_train_step(benchmark, name, impl, torch_or_skip):
    c = CASES[name]
    if impl == "torch":
        step = torch_step(c)
    else:
        if impl == "reference" and c["kind"] != "classifier":
            pytest.skip("the NumPy reference is only timed on the T=28 classifier cases")
        step = nnx_step(c)
        if impl == "reference":
            inner = step

            def step():
                with nnx.functional.use_backend(nnx.reference):
                    return inner()
    record(benchmark, f"rnn train step {name}", impl, flops=case_flops(c))
    benchmark.extra_info["batch_size"] = c["N"]
    benchmark(step)
