"""nnx.distributed and sharded loading: several processes started by a real `mpiexec` over loopback.

The multi-process tests run tests/mpi_worker.py under `mpiexec -n 2` or `-n 3` and read back what the
ranks wrote; they skip when mpi4py or mpiexec is absent (pip install ".[mpi]"). The sharding and
no-MPI tests run everywhere.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

import nnx

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mpi_worker as W  # noqa: E402

try:
    import mpi4py  # noqa: F401
    _MPI_MISSING = None if shutil.which("mpiexec") else "mpiexec is not on PATH (pip install \".[mpi]\")"
except ImportError:
    _MPI_MISSING = "mpi4py is not installed (pip install \".[mpi]\")"
needs_mpi = pytest.mark.skipif(_MPI_MISSING is not None, reason=str(_MPI_MISSING))

# A generous bound that only a hang reaches; the runs take a few seconds.
HANG_S = 120


def _env():
    python_dir = os.path.dirname(nnx.__path__[0])
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in [python_dir, os.environ.get("PYTHONPATH", "")] if p),
                OMP_NUM_THREADS="1")


def _run(argv, timeout=HANG_S):
    """Runs argv in its own process group; on a hang kills the whole group and fails."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(argv)} hung for {timeout} s\nstdout:\n{out}\nstderr:\n{err}")
    return proc.returncode, out, err


def _mpiexec(n, *args, timeout=HANG_S):
    return _run(["mpiexec", "-n", str(n)] + list(args), timeout)


def _worker(n, scenario, out):
    rc, so, se = _mpiexec(n, sys.executable, os.path.join(HERE, "mpi_worker.py"), scenario, str(out))
    return rc, so, se


def _single_process_reference(world):
    """The same steps in one process with a batch world times larger (the data a world-rank run sees)."""
    nnx.manual_seed(W.SEED)
    model = W.tiny_model()
    X, y = W.tiny_data(world * W.PER_RANK_BATCH * (W.STEPS + 1) + 2)
    loader = nnx.data.DataLoader(X, y, batch_size=world * W.PER_RANK_BATCH, shuffle=True, seed=W.DATA_SEED)
    batches = []
    W.run_steps(model, loader, W.STEPS, lambda step, xb: batches.append(sorted(W.sample_ids(xb))))
    return model, batches


# --------------------------------------------------------------------------------------------- several ranks
@needs_mpi
def test_two_ranks_equal_one_process_with_twice_the_batch_and_are_bitwise_reproducible(tmp_path):
    runs = []
    for i in range(2):
        out = tmp_path / f"run{i}"
        out.mkdir()
        rc, so, se = _worker(2, "train", out)
        assert rc == 0, se
        runs.append((json.loads((out / "report.json").read_text()), nnx.load(out / "params.npz")))
    (report, params), (report2, params2) = runs
    # Same number of ranks: the same bits, step after step, run after run.
    assert [r["digests"] for r in report] == [r["digests"] for r in report2]
    for k in params:
        assert params[k].tobytes() == params2[k].tobytes(), k
    # Every step ended with bitwise identical parameters on both ranks (check_in_sync compared digests).
    assert len(report[0]["digests"]) == W.STEPS and report[0]["digests"] == report[1]["digests"]
    assert report[0]["reductions"] == W.STEPS
    # Disjoint shards whose union at each step is the single-process batch; then the same parameters.
    ref, ref_batches = _single_process_reference(2)
    b = W.PER_RANK_BATCH
    assert not set(report[0]["seen"]) & set(report[1]["seen"])
    for step in range(W.STEPS):
        union = sorted(report[0]["seen"][step * b:(step + 1) * b] + report[1]["seen"][step * b:(step + 1) * b])
        assert union == ref_batches[step]
    nnx.manual_seed(W.SEED)
    initial = W.tiny_model().state_dict()
    for k, v in ref.state_dict().items():
        assert not np.allclose(v, initial[k]), f"{k} did not move: the comparison would prove nothing"
        np.testing.assert_allclose(params[k], v, rtol=1e-5, atol=1e-6, err_msg=k)


@needs_mpi
def test_three_ranks_uneven_shards_and_batchnorm_statistics(tmp_path):
    rc, so, se = _worker(3, "batchnorm", tmp_path)
    assert rc == 0, se
    report = json.loads((tmp_path / "report.json").read_text())
    n = 3 * W.PER_RANK_BATCH * (W.STEPS + 1) + 2  # 2 samples too many for equal shards
    seen = [set(r["seen"]) for r in report]
    assert [len(r["seen"]) for r in report] == [n // 3] * 3          # equal shards, each sample once
    assert [r["batches"] for r in report] == [-(-(n // 3) // W.PER_RANK_BATCH)] * 3
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert len(set().union(*seen)) == n - 2
    assert report[0]["digests"] == report[1]["digests"] == report[2]["digests"]
    # Running statistics: different per rank during the epoch, their mean on every rank after it.
    local = np.array([r["local_running_mean"] for r in report])
    assert not np.allclose(local[0], local[1])
    for r in report:
        np.testing.assert_allclose(r["averaged_running_mean"], local.mean(axis=0), rtol=1e-6, atol=1e-7)
    assert len({r["full_digest"] for r in report}) == 1


@needs_mpi
def test_sync_batchnorm_two_ranks_equal_one_process_on_the_concatenated_batch(tmp_path):
    rc, so, se = _worker(2, "syncbn", tmp_path)
    assert rc == 0, se
    report = json.loads((tmp_path / "report.json").read_text())
    # Running statistics included: the ranks agree bitwise after every step without end_epoch().
    assert len(report[0]["digests"]) == W.STEPS and report[0]["digests"] == report[1]["digests"]
    params = nnx.load(tmp_path / "params.npz")
    nnx.manual_seed(W.SEED)
    ref = W.sync_bn_model()  # plain BatchNorm, one process, batch 2 * PER_RANK_BATCH
    initial = {k: v.copy() for k, v in ref.state_dict().items()}
    first = W.run_sync_bn_steps(ref, W.sync_bn_batches(2, W.STEPS))
    b = W.PER_RANK_BATCH
    for rank in (0, 1):
        mine = np.load(tmp_path / f"first_output_rank{rank}.npy")
        np.testing.assert_allclose(mine, first[rank * b:(rank + 1) * b], rtol=1e-10, atol=1e-12)
    for k, v in ref.state_dict().items():
        if v.dtype.kind == "f":
            assert not np.allclose(v, initial[k]), f"{k} did not move: the comparison would prove nothing"
            np.testing.assert_allclose(params[k], v, rtol=1e-10, atol=1e-12, err_msg=k)
        else:
            assert params[k] == v, k


@needs_mpi
def test_different_models_are_refused_at_broadcast(tmp_path):
    rc, so, se = _worker(2, "mismatch", tmp_path)
    assert rc != 0
    for rank in (0, 1):  # both ranks stop with the same explanation, neither waits
        # Searched in the whole output: the two ranks' lines share one pipe and may arrive interleaved.
        msg = re.search(rf"rank {rank}: broadcast_parameters: the ranks' models differ[^\n]*?first difference: "
                        r"'0\.weight' \(6, 1, 3, 3\) <f4 on rank 1 vs '0\.weight' \(4, 1, 3, 3\) <f4 on rank 0", so)
        assert msg, so + se


@needs_mpi
def test_a_killed_rank_ends_the_job(tmp_path):
    rc, so, se = _worker(2, "kill", tmp_path)  # rank 0 trains forever unless the job is torn down
    assert rc != 0


@needs_mpi
def test_cli_failure_aborts_all_ranks_then_resume_with_another_rank_count(tmp_path):
    out = tmp_path / "run"
    rc, so, se = _worker(2, "cli_fail", out)
    assert rc != 0
    assert "injected failure on rank 1" in se and "aborting every rank" in se
    assert nnx.load(out / "checkpoint.npz")["epoch"] == 1  # written after epoch 1, intact
    assert so.count("epoch 1/3:") == 1  # rank 0 alone prints
    assert "data-parallel over 2 MPI ranks" in so and "not scaled" in so
    rc, so, se = _mpiexec(3, sys.executable, "-m", "nnx", "train", "--model", "mlp", "--dataset", "sample",
                          "--limit", "768", "--batch-size", "32", "--schedule", "constant", "--epochs", "2",
                          "--no-progress", "--resume", "--out", str(out))
    assert rc == 0, se
    assert "saved by 2 ranks, now 3" in so and so.count("test accuracy") == 1
    ckpt = nnx.load(out / "checkpoint.npz")
    assert ckpt["epoch"] == 2 and ckpt["extra"]["world_size"] == 3
    assert sorted(os.listdir(out)) == ["checkpoint.npz", "history.json", "learning_curve.png", "result.json"] \
        or sorted(os.listdir(out)) == ["checkpoint.npz", "history.json", "result.json"]


@needs_mpi
def test_one_rank_buckets_leave_gradients_unchanged(tmp_path):
    rc, so, se = _run([sys.executable, os.path.join(HERE, "mpi_worker.py"), "single", str(tmp_path)])
    assert rc == 0 and "single scenario ok" in so, se


# --------------------------------------------------------------------------------------------- without MPI
def test_import_and_world_of_one_without_mpi4py():
    code = """
import sys
sys.modules["mpi4py"] = None            # as if the extra were not installed
import numpy as np, nnx
assert "mpi4py.MPI" not in sys.modules
d = nnx.distributed
assert d.init() == 1 and d.rank() == 0 and d.world_size() == 1 and not d.is_available()
a = np.arange(4, dtype=np.float32)
assert d.allreduce_(a, "mean") is a and a.tolist() == [0, 1, 2, 3]
m = nnx.models.lenet5()
ddp = d.DistributedDataParallel(m)
d.broadcast_parameters(ddp)
d.broadcast_optimizer_state(nnx.optim.SGD(m.parameters(), lr=0.1))
X, y = nnx.data.fashion_mnist_sample("train")
h = nnx.fit(ddp, nnx.nn.CrossEntropyLoss(), nnx.optim.SGD(ddp.parameters(), lr=0.05), (X[:64], y[:64]),
            batch_size=32, transform=nnx.data.to_float_images, progress=False)
assert len(h) == 1 and ddp.reductions == 0
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=HANG_S)
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr


def test_started_by_mpiexec_without_mpi4py_says_how_to_fix():
    code = "import sys; sys.modules['mpi4py'] = None; import nnx; nnx.distributed.init()"
    env = dict(_env(), PMI_SIZE="2", PMI_RANK="0")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=HANG_S)
    assert r.returncode != 0 and 'pip install "nnx[mpi]"' in r.stderr


def test_allreduce_checks_its_arguments():
    a = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="op: expected one of"):
        nnx.distributed.allreduce_(a, op="avg")
    with pytest.raises(TypeError, match="'mean' needs a floating-point array"):
        nnx.distributed.allreduce_(np.zeros(3, np.int64), op="mean")
    with pytest.raises(ValueError, match="writable C-contiguous"):
        nnx.distributed.allreduce_(a.T, op="sum")
    with pytest.raises(TypeError, match="expected an ndarray or Tensor"):
        nnx.distributed.allreduce_([1.0, 2.0])


# --------------------------------------------------------------------------------------------- sharding
def _shards(n, world, batch, seed=3, epoch=0, shuffle=True):
    X = np.arange(n)
    out = []
    for r in range(world):
        dl = nnx.data.DataLoader(X, batch_size=batch, shuffle=shuffle, seed=seed, rank=r, world_size=world)
        dl.set_epoch(epoch)
        out.append([b.tolist() for b in dl])
    return out


@pytest.mark.parametrize("n,world,batch", [(100, 2, 16), (101, 3, 8), (7, 3, 4), (64, 4, 16), (10, 1, 3)])
def test_shards_are_disjoint_and_the_same_length(n, world, batch):
    shards = _shards(n, world, batch)
    lengths = {len(s) for s in shards}
    assert lengths == {-(-(n // world) // batch)}
    flat = [i for s in shards for b in s for i in b]
    assert len(flat) == len(set(flat)) == (n // world) * world
    assert all(len(b1) == len(b2) for s in shards for b1, b2 in zip(s, shards[0]))


def test_shards_together_are_the_single_loader_batches():
    world, batch = 4, 8
    single = nnx.data.DataLoader(np.arange(96), batch_size=world * batch, shuffle=True, seed=3)
    shards = _shards(96, world, batch)
    for k, whole in enumerate(single):
        assert sorted(i for s in shards for i in s[k]) == sorted(whole.tolist())


def test_shards_reshuffle_every_epoch_from_the_seed():
    e0, e1 = _shards(60, 2, 10, epoch=0), _shards(60, 2, 10, epoch=1)
    assert e0 != e1
    assert e0 == _shards(60, 2, 10, epoch=0)            # a function of (seed, epoch) only
    dl = nnx.data.DataLoader(np.arange(60), batch_size=10, shuffle=True, seed=3, rank=1, world_size=2)
    first, second = [b.tolist() for b in dl], [b.tolist() for b in dl]
    assert first == e0[1] and second == e1[1]          # passes count up on their own
    assert _shards(9, 3, 2, shuffle=False)[1] == [[1, 4], [7]]


@pytest.mark.parametrize("kwargs,exc,message", [
    (dict(rank=2, world_size=2), ValueError, "rank: expected 0 to world_size - 1 = 1, got 2"),
    (dict(rank=-1, world_size=2), ValueError, "rank: expected an int >= 0"),
    (dict(world_size=0), ValueError, "world_size: expected an int >= 1"),
    (dict(world_size=2.0), TypeError, "world_size: expected an int"),
    (dict(world_size=2, shuffle=True), ValueError, "seed: shuffling a shard"),
    (dict(seed=-1), TypeError, "seed: expected a non-negative int"),
])
def test_sharding_bad_arguments(kwargs, exc, message):
    with pytest.raises(exc, match=message):
        nnx.data.DataLoader(np.zeros(10), batch_size=2, **kwargs)


def test_fit_refuses_an_unsharded_loader_for_a_data_parallel_model():
    from nnx.train import _loader

    class FakeDDP:
        world_size, rank = 2, 1
    loader = nnx.data.DataLoader(np.zeros((8, 2)), np.zeros(8, np.int64), batch_size=2)
    with pytest.raises(ValueError, match="rank=1, world_size=2"):
        _loader(loader, 2, True, None, "train", FakeDDP())


# --------------------------------------------------------------------------------------------- the engine hook
def test_grad_ready_hook_fires_once_with_the_complete_gradient_as_early_as_possible():
    nnx.manual_seed(0)
    model = nnx.nn.Sequential(nnx.nn.Linear(5, 4), nnx.nn.Tanh(), nnx.nn.Linear(4, 4), nnx.nn.Tanh(),
                              nnx.nn.Linear(4, 3))
    shared = model[2].weight
    x = np.random.default_rng(1).standard_normal((6, 5)).astype(np.float32)

    def loss():  # model[2].weight is used twice: its hook must see both contributions summed
        h = model(x)
        return (h * h).sum() + (shared * shared).sum()

    loss().backward()
    expected = {n: p.grad.copy() for n, p in model.named_parameters()}
    model.zero_grad()
    fired = []
    handles = [p.register_grad_ready_hook(lambda t, n=n: fired.append((n, t.grad.copy())))
               for n, p in model.named_parameters()]
    loss().backward()
    names = [n for n, _ in fired]
    assert sorted(names) == sorted(expected) and len(names) == len(set(names))
    for n, g in fired:
        assert g.tobytes() == expected[n].tobytes(), n          # complete, and the same bits as without hooks
    # Reverse layer order: the last layer's gradients are announced before any earlier layer's (the shared
    # weight waits for its second consumer, which this graph runs last).
    layer = [int(n.split(".")[0]) for n in names if n != "2.weight"]
    assert layer == sorted(layer, reverse=True), names
    for h in handles:
        h.remove()
        h.remove()
    fired.clear()
    loss().backward()
    assert fired == []


def test_grad_ready_hook_arguments():
    t = nnx.Tensor(np.ones(3, np.float32), requires_grad=True)
    with pytest.raises(TypeError, match="hook: expected a callable"):
        t.register_grad_ready_hook(3)
    with pytest.raises(ValueError, match="only leaf tensors"):
        (t * 2).register_grad_ready_hook(print)
