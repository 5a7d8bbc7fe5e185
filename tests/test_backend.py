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
        pytest.skip("malloc tuning not applied: not glibc, or malloc replaced (AddressSanitizer)")
    assert faults < 200  # 200 arrays of 1.2 MB: 60,000 faults without reuse
    untuned, faults_off = run(NNX_MALLOC_TUNING="0")
    assert not untuned and faults_off > 10_000


def _run_together(jobs, repeats=4):
    """Runs each job in its own Python thread, all released at once, `repeats` times each; returns every
    result of every job."""
    import threading

    barrier = threading.Barrier(len(jobs))
    results = [[] for _ in jobs]
    errors = []

    def work(i):
        try:
            barrier.wait(30)
            for _ in range(repeats):
                results[i].append(jobs[i]())
        except BaseException as e:  # reported by the main thread; a thread's exception is otherwise lost
            errors.append(e)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert not errors, errors
    return results


def _as_bytes(value):
    if isinstance(value, (tuple, list)):
        return tuple(_as_bytes(v) for v in value)
    return None if value is None else (np.asarray(value).dtype.str, np.asarray(value).shape,
                                        np.asarray(value).tobytes())


def test_different_ops_in_concurrent_threads_match_single_threaded_bitwise():
    """Forward and backward of conv2d (each algorithm), linear, the poolings and the losses, all at once in
    several Python threads (the GIL is released in the kernels, so they really overlap, each also using
    the OpenMP pool): every result is bitwise what the op gives when it runs alone."""
    ops = nnx.ops
    rng = np.random.default_rng(5)
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    x, w, b = f32(4, 6, 12, 12), f32(8, 6, 3, 3), f32(8)
    dy = f32(4, 8, 12, 12)
    x1, w1 = f32(4, 6, 9, 9), f32(8, 6, 1, 1)
    xd, wd = f32(4, 6, 10, 10), f32(6, 1, 3, 3)
    xl, wl, bl, dyl = f32(64, 50), f32(30, 50), f32(30), f32(64, 30)
    xp = f32(4, 5, 16, 16)
    dpool = f32(4, 5, 8, 8)
    logits, target = f32(64, 10), rng.integers(0, 10, 64)
    jobs = [
        lambda: ops.conv2d(x, w, b, padding=1, algorithm="direct", activation="relu"),
        lambda: ops.conv2d_backward(dy, x, w, b, padding=1, algorithm="direct"),
        lambda: ops.conv2d(x, w, b, padding=1, algorithm="im2col"),
        lambda: ops.conv2d_backward(dy, x, w, b, padding=1, algorithm="im2col"),
        lambda: ops.conv2d_backward(ops.conv2d(x1, w1), x1, w1, algorithm="gemm1x1"),
        lambda: ops.conv2d_backward(ops.conv2d(xd, wd, groups=6), xd, wd, groups=6, algorithm="depthwise"),
        lambda: (ops.linear(xl, wl, bl, activation="tanh"), ops.linear_backward(dyl, xl, wl, bl)),
        lambda: (ops.max_pool2d(xp, 2), ops.max_pool2d_backward(dpool, xp, 2)),
        lambda: (ops.avg_pool2d(xp, 3, 2, 1), ops.avg_pool2d_backward(dpool, xp, 3, 2, 1)),
        lambda: (ops.cross_entropy(logits, target), ops.cross_entropy_backward(np.float32(1), logits, target),
                 ops.log_softmax(logits), ops.sigmoid(xl)),
    ]
    alone = [_as_bytes(job()) for job in jobs]
    for i, runs in enumerate(_run_together(jobs)):
        for r in runs:
            assert _as_bytes(r) == alone[i], f"job {i} gave different bits when run concurrently"


def test_two_models_trained_in_concurrent_threads_match_sequential_training():
    """Each thread trains its own LeNet-style model (conv, pool, linear, SGD with momentum) on its own
    data; the parameters are bitwise those of the same trainings run one after the other."""
    from nnx import nn, optim
    import threading

    def build(seed):
        nnx.manual_seed(seed)  # models are built in the main thread: nnx.random is one shared stream
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3),
                              nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(6 * 2 * 2, 10))
        data = np.random.default_rng(seed)
        X = data.standard_normal((48, 1, 12, 12)).astype(np.float32)
        y = data.integers(0, 10, 48)
        return model, X, y

    def train(model, X, y):
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        loss_fn = nn.CrossEntropyLoss()
        for epoch in range(3):
            for i in range(0, len(X), 16):  # fixed batches: no shared shuffling stream
                opt.zero_grad()
                loss_fn(model(X[i:i + 16]), y[i:i + 16]).backward()
                opt.step()
        return model.state_dict()

    sequential = [train(*build(seed)) for seed in (1, 2)]
    setups = [build(seed) for seed in (1, 2)]
    concurrent = [None, None]

    def work(i):
        concurrent[i] = train(*setups[i])

    ts = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    for seq, conc in zip(sequential, concurrent):
        assert conc is not None
        for k in seq:
            assert seq[k].tobytes() == conc[k].tobytes(), k
