import os
import subprocess
import sys

import numpy as np
import pytest

import nnx


def test_cpu_info_names_active_path():
    info = nnx.cpu_info()
    assert info["active_isa"] in ("portable", "avx2", "avx512", "neon")
    assert info["detected_isa"] in ("portable", "avx2", "avx512", "neon")
    assert isinstance(info["sgemm_ukernel"], str) and info["sgemm_ukernel"]


def test_set_isa_switches_and_rejects_unknown():
    before = nnx.cpu_info()["active_isa"]
    try:
        assert nnx.set_isa("portable") == "portable"
        assert nnx.cpu_info()["active_isa"] == "portable"
    finally:
        nnx.set_isa(before)
    with pytest.raises(ValueError, match="isa: expected one of"):
        nnx.set_isa("sse9")


def test_env_var_forces_portable_path():
    code = "import nnx; print(nnx.cpu_info()['active_isa'])"
    env = dict(os.environ, NNX_ISA="portable")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "portable"


def test_threads_roundtrip_and_errors():
    n = nnx.get_num_threads()
    try:
        nnx.set_num_threads(1)
        assert nnx.get_num_threads() == 1
        nnx.set_num_threads(3)
        assert nnx.get_num_threads() == 3
    finally:
        nnx.set_num_threads(n)
    with pytest.raises(ValueError, match="n: expected a thread count >= 1"):
        nnx.set_num_threads(0)
    with pytest.raises(TypeError, match="n: expected an int"):
        nnx.set_num_threads(2.5)


def test_default_threads_follow_omp_num_threads():
    code = "import nnx; print(nnx.get_num_threads())"
    env = dict(os.environ, OMP_NUM_THREADS="3")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "3"


def test_threadpoolctl_sees_and_limits_nnx_openmp_pool():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not nnx.cpu_info()["openmp"]:
        pytest.skip("built without OpenMP")
    n = nnx.get_num_threads()
    try:
        nnx.set_num_threads(4)
        infos = threadpoolctl.threadpool_info()
        assert any(i["user_api"] == "openmp" for i in infos), infos
        with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
            assert nnx.get_num_threads() == 1
    finally:
        nnx.set_num_threads(n)


def test_gil_is_released_threads_compute_correctly():
    import threading

    rng = np.random.default_rng(0)
    a = rng.standard_normal((200, 300))
    b = rng.standard_normal((300, 100))
    want = a @ b
    results = [None] * 4

    def work(i):
        results[i] = nnx.ops.gemm(a, b)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for r in results:
        np.testing.assert_allclose(r, want, rtol=1e-10, atol=1e-10)


_FAULTS_SCRIPT = """
import resource, numpy as np, nnx
x = np.ones((64, 6, 28, 28), np.float32)
for _ in range(3):  # warm-up: the heap grows to hold the working set once
    ys = [nnx.ops.relu(x) for _ in range(4)]
    del ys
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    ys = [nnx.ops.relu(x) for _ in range(4)]
    del ys
print(nnx.cpu_info()["malloc_tuned"], resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_malloc_tuning_reuses_pages_of_freed_outputs():
    """Training loops free and reallocate the same megabyte-sized outputs every step: with nnx's malloc
    tuning those pages are reused (no page faults per step); with NNX_MALLOC_TUNING=0 glibc mmaps each
    1.2 MB output afresh, about 300 faults each."""
    def run(**env):
        e = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        e.update(env)
        out = subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT], env=e, capture_output=True, text=True,
                             check=True).stdout.split()
        return out[0] == "True", int(out[1])
    tuned, faults = run()
    if not tuned:
        pytest.skip("not glibc: the tuning does not apply")
    assert faults < 200  # 200 arrays of 1.2 MB: 60,000 faults without reuse
    untuned, faults_off = run(NNX_MALLOC_TUNING="0")
    assert not untuned and faults_off > 10_000
