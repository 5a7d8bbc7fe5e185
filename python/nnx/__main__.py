"""Command line: `python -m nnx demo` and `python -m nnx train ...` (also installed as `nnx`)."""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time

import numpy as np

DEMO_SIZES = dict(n=64, d_in=1000, hidden=100, d_out=10)


# --------------------------------------------------------------------------------------------- demo
def two_layer_net(lib, x, y, params, steps: int, lr: float, every: int):
    """Plain gradient descent on a sigmoid two-layer network with L2 loss, using only `lib`'s ops (nnx.ops
    or nnx.reference: the same names). Returns [(step, loss)] every `every` steps and the seconds taken."""
    w1, b1, w2, b2 = (p.copy() for p in params)
    one = np.ones((), dtype=x.dtype)
    curve = []
    start = time.perf_counter()
    for t in range(steps):
        h = lib.linear(x, w1, b1, activation="sigmoid")          # h = sigmoid(x w1^T + b1)
        pred = lib.linear(h, w2, b2)                              # pred = h w2^T + b2
        loss = lib.mse_loss(pred, y)                              # mean((pred - y)^2)
        dpred = lib.mse_loss_backward(one, pred, y)
        dh, dw2, db2 = lib.linear_backward(dpred, h, w2, b2)
        _, dw1, db1 = lib.linear_backward(dh, x, w1, b1, activation="sigmoid", y=h, needs=(False, True, True))
        w1 -= lr * dw1
        b1 -= lr * db1
        w2 -= lr * dw2
        b2 -= lr * db2
        if t % every == 0 or t == steps - 1:
            curve.append((t, float(loss)))
    return curve, time.perf_counter() - start


def _blas_threads(n: int):
    """Limits NumPy's BLAS to n threads when threadpoolctl is installed (else leaves it alone)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib
        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


def _missing_ops(lib) -> list:
    need = ("linear", "linear_backward", "mse_loss", "mse_loss_backward")
    return [name for name in need if not hasattr(lib, name)]


def demo(steps: int = 500, lr: float = 0.1, every: int = 50, seed: int = 0, dtype=np.float32, out=None) -> int:
    """The two-layer network "in 20 lines", once on nnx.ops and once on nnx.reference."""
    import nnx

    out = sys.stdout if out is None else out
    for name, lib in (("nnx.ops", nnx.ops), ("nnx.reference", nnx.reference)):
        missing = _missing_ops(lib)
        if missing:
            print(f"demo: {name} lacks {', '.join(missing)}; this build of nnx cannot run the demo yet",
                  file=sys.stderr)
            return 1
    s = DEMO_SIZES
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((s["n"], s["d_in"])).astype(dtype)
    y = rng.standard_normal((s["n"], s["d_out"])).astype(dtype)
    params = ((rng.standard_normal((s["hidden"], s["d_in"])) / np.sqrt(s["d_in"])).astype(dtype),
              np.zeros(s["hidden"], dtype),
              (rng.standard_normal((s["d_out"], s["hidden"])) / np.sqrt(s["hidden"])).astype(dtype),
              np.zeros(s["d_out"], dtype))
    print(f"Two-layer network: {s['n']} samples, {s['d_in']} inputs -> {s['hidden']} sigmoid units -> "
          f"{s['d_out']} outputs, L2 loss, gradient descent lr={lr}, {steps} steps, {np.dtype(dtype).name}, "
          f"{nnx.get_num_threads()} threads", file=out)
    # One untimed step each, so one-time costs (workspace allocation, BLAS start-up) are not counted.
    two_layer_net(nnx.ops, x, y, params, 1, lr, 1)
    fast, t_ops = two_layer_net(nnx.ops, x, y, params, steps, lr, every)
    with _blas_threads(nnx.get_num_threads()):  # the reference's matmuls get the same number of threads
        two_layer_net(nnx.reference, x, y, params, 1, lr, 1)
        slow, t_ref = two_layer_net(nnx.reference, x, y, params, steps, lr, every)
    print(f"{'step':>6} {'loss (nnx.ops)':>16} {'loss (reference)':>17} {'rel. diff':>10}", file=out)
    worst = 0.0
    for (t, a), (_, b) in zip(fast, slow):
        rel = abs(a - b) / max(abs(b), 1e-30)
        worst = max(worst, rel)
        print(f"{t:>6} {a:>16.6g} {b:>17.6g} {rel:>10.1e}", file=out)
    tol = 1e-3 if np.dtype(dtype) == np.float32 else 1e-9
    agree = worst <= tol
    print(f"curves {'agree' if agree else 'DISAGREE'}: largest relative difference {worst:.1e} "
          f"(tolerance {tol:.0e})", file=out)
    print(f"time: nnx.ops {t_ops:.3f} s, nnx.reference {t_ref:.3f} s -> speed-up {t_ref / t_ops:.1f}x", file=out)
    return 0 if agree else 2


# --------------------------------------------------------------------------------------------- train
def _load_dataset(name: str, root):
    """(train, test, description); falls back to the shipped sample when the full set is absent."""
    from . import data

    if name == "sample":
        return data.fashion_mnist_sample("train"), data.fashion_mnist_sample("test"), "Fashion-MNIST sample"
    loader = data.fashion_mnist if name == "fashion-mnist" else data.mnist
    try:
        return loader("train", root), loader("test", root), name
    except FileNotFoundError as exc:
        print(f"note: {exc}", file=sys.stderr)
        print(f"note: {name} not found; falling back to the Fashion-MNIST sample shipped with nnx "
              f"(6000 train / 1000 test images)", file=sys.stderr)
        return data.fashion_mnist_sample("train"), data.fashion_mnist_sample("test"), "Fashion-MNIST sample"


def _start_distributed(args):
    """(rank, world size). MPI starts only when a launcher (mpiexec) started this process as one of
    several, so a plain `python -m nnx train` never touches it."""
    from . import distributed as dist

    if dist.launcher_world_size() <= 1:
        return 0, 1
    dist.init()  # from here an uncaught exception on any rank aborts them all
    world = dist.world_size()
    if world > 1 and not args.threads and "OMP_NUM_THREADS" not in os.environ:
        # The ranks on one machine share its cores: one OpenMP team each over all cores would oversubscribe.
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        args.threads = max(1, cores // dist.local_size())
    return dist.rank(), world


def _rank_seed(seed: int, epoch: int, rank: int) -> int:
    """Each rank's stream for dropout in an epoch: its own, and a function of (seed, epoch, rank) only, so a
    resumed run draws what an uninterrupted one would."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1, np.uint64)[0])


def _resume(args, ckpt_path, model, opt, scheduler, config, world):
    """Restores the checkpoint (rank 0's job). Returns (exit code, epochs done, History)."""
    from .train import History, load_checkpoint

    if not os.path.exists(ckpt_path):
        print(f"error: --resume: no checkpoint at {ckpt_path}", file=sys.stderr)
        return 1, 0, History()
    try:
        start_epoch, history, saved = load_checkpoint(ckpt_path, model, opt, scheduler)
    except ValueError as exc:  # a corrupt file (CheckpointError) or another model's (StateDictError)
        print(f"error: --resume: {exc}", file=sys.stderr)
        return 1, 0, History()
    # Checkpoints from before --scale-lr existed have no "scale_lr": they were made without it.
    saved = {"scale_lr": False, **saved}
    different = {k: (saved.get(k), v) for k, v in config.items() if saved.get(k) != v}
    if different:
        desc = ", ".join(f"{k}: checkpoint {a!r} vs now {b!r}" for k, (a, b) in different.items())
        print(f"error: --resume: {ckpt_path} was made with different settings ({desc})", file=sys.stderr)
        return 1, 0, History()
    saved_world = int(saved.get("world_size", 1))
    print(f"resuming from {ckpt_path} after epoch {start_epoch}" +
          (f" (saved by {saved_world} ranks, now {world})" if saved_world != world else ""))
    if args.scale_lr and saved_world != world:
        factor = world / saved_world
        for g in opt.param_groups:
            g["lr"] *= factor
            if "initial_lr" in g:
                g["initial_lr"] *= factor
        if scheduler is not None:
            scheduler.base_lrs = [b * factor for b in scheduler.base_lrs]
        print(f"--scale-lr: learning rate scaled by {world}/{saved_world} for the new rank count")
    return 0, start_epoch, history


def _describe_parallelism(args, world, lr, threads) -> str:
    if world == 1:
        return ""
    scaled = (f"scaled by {world} (--scale-lr) from {args.lr}" if args.scale_lr
              else f"not scaled; --scale-lr would use {args.lr * world:g}")
    return (f"data-parallel over {world} MPI ranks x {threads} threads: batch {args.batch_size} per rank, "
            f"{args.batch_size * world} per step; learning rate {lr:g} ({scaled})")


def train(args) -> int:
    import nnx
    from . import data, models, nn, optim
    from . import distributed as dist
    from .train import History

    try:
        rank, world = _start_distributed(args)
    except RuntimeError as exc:  # started by mpiexec without mpi4py
        print(f"error: {exc}", file=sys.stderr)
        return 1
    say = print if rank == 0 else (lambda *a, **k: None)
    if args.threads:
        nnx.set_num_threads(args.threads)
    nnx.manual_seed(args.seed)
    (X, y), (Xt, yt), described = _load_dataset(args.dataset, args.data_root)
    if args.limit:
        X, y = X[:args.limit], y[:args.limit]
    # Standardise with the training set's pixel statistics, applied per batch (no float copy of the set).
    mean, std = float(X.mean()) / 255, float(X.std()) / 255
    transform = functools.partial(data.to_float_images, mean=mean, std=std)

    # Augmentation runs on the raw training images, then they are scaled as the test images are.
    train_transform = (data.Compose([data.augment.build_augmentation(args.augment), transform]) if args.augment
                       else transform)
    model = models.build(args.model)
    lr = args.lr * world if args.scale_lr else args.lr
    opt = optim.SGD(model.parameters(), lr=lr, momentum=args.momentum, weight_decay=args.weight_decay)
    # Cosine annealing: the learning rate falls smoothly to zero at the last epoch, which settles the
    # weights in a flatter minimum (about half a point of test accuracy for LeNet-5 here).
    scheduler = (optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
                 if args.schedule == "cosine" else None)
    loss_fn = nn.CrossEntropyLoss()
    if rank == 0:
        os.makedirs(args.out, exist_ok=True)
    ckpt_path = os.path.join(args.out, "checkpoint.npz")
    config = {"model": args.model, "dataset": described, "batch_size": args.batch_size, "lr": args.lr,
              "momentum": args.momentum, "seed": args.seed, "limit": args.limit or 0,
              "weight_decay": args.weight_decay, "schedule": args.schedule,
              "epochs": args.epochs if args.schedule == "cosine" else None, "scale_lr": args.scale_lr,
              "augment": args.augment}
    start_epoch, history = 0, History()
    if args.resume:
        if rank == 0:
            code, start_epoch, history = _resume(args, ckpt_path, model, opt, scheduler, config, world)
        else:
            code = None
        if world > 1:
            # Rank 0 alone reads the file (other machines need not see it) and hands the rest what it found.
            code, start_epoch, done = dist.broadcast_object((code, start_epoch, history.to_dict()))
            history = History.from_dict(done)
        if code:
            return code
    if world > 1:
        model = dist.DistributedDataParallel(model)  # gives every rank rank 0's parameters
        if args.resume:
            dist.broadcast_optimizer_state(opt)
            if scheduler is not None:
                scheduler.load_state_dict(dist.broadcast_object(scheduler.state_dict()))
        nnx.manual_seed(_rank_seed(args.seed, start_epoch, rank))
        train_data = data.DataLoader(X, y, batch_size=args.batch_size, shuffle=True, transform=train_transform,
                                     seed=args.seed, rank=rank, world_size=world)
    elif args.augment:
        train_data = data.DataLoader(X, y, batch_size=args.batch_size, shuffle=True, transform=train_transform)
    else:
        train_data = (X, y)
    n_params = sum(p.data.size for p in model.parameters())
    say(f"training {args.model} ({n_params} parameters) on {described}: {len(X)} train / {len(Xt)} test "
        f"images, epochs {start_epoch + 1}..{args.epochs}, batch {args.batch_size}, SGD lr {lr:g} "
        f"momentum {args.momentum}, {args.schedule} schedule, {nnx.get_num_threads()} threads, seed {args.seed}")
    if world > 1:
        say(_describe_parallelism(args, world, lr, nnx.get_num_threads()))
    return _fit_and_report(args, model, loss_fn, opt, scheduler, train_data, (Xt, yt), transform, history,
                           start_epoch, ckpt_path, {**config, "world_size": world}, rank, world, described)


def _fit_and_report(args, model, loss_fn, opt, scheduler, train_data, test, transform, history, start_epoch,
                    ckpt_path, extra, rank, world, described) -> int:
    """Trains, then (rank 0) evaluates and writes the results. Only rank 0 prints and writes files."""
    import nnx
    from . import distributed as dist
    from .train import Checkpoint, evaluate, fit

    Xt, yt = test

    def save_history(epoch, hist):
        hist.save_json(os.path.join(args.out, "history.json"))

    def reseed(epoch, hist):
        nnx.manual_seed(_rank_seed(args.seed, epoch, rank))

    callbacks = [Checkpoint(ckpt_path, model, opt, scheduler, extra=extra), save_history] if rank == 0 else []
    if world > 1:
        callbacks.append(reseed)
    try:
        history = fit(model, loss_fn, opt, train_data, epochs=args.epochs, batch_size=args.batch_size,
                      val=(Xt, yt), transform=transform, progress=not args.no_progress and rank == 0,
                      start_epoch=start_epoch, history=history, scheduler=scheduler, callbacks=callbacks,
                      compile=not args.no_compile)
    except KeyboardInterrupt:
        if rank == 0:
            if os.path.exists(ckpt_path):
                done = nnx.load(ckpt_path)["epoch"]
                print(f"\ninterrupted: {ckpt_path} (after epoch {done}) is intact; continue with --resume",
                      file=sys.stderr)
            else:
                print("\ninterrupted before the first epoch finished; no checkpoint written", file=sys.stderr)
        if world > 1:
            dist.abort(130)  # a rank may be inside a collective that would wait for the others forever
        return 130
    if rank != 0:
        return 0
    test_loss, test_acc = evaluate(model, Xt, yt, transform=transform)
    print(f"test accuracy {test_acc:.4f} (loss {test_loss:.4f})")
    history.save_json(os.path.join(args.out, "history.json"))
    with open(os.path.join(args.out, "result.json"), "w") as f:
        json.dump({"test_accuracy": test_acc, "test_loss": test_loss, **extra}, f, indent=1)
    png = os.path.join(args.out, "learning_curve.png")
    if len(history):
        try:
            history.plot(png, title=f"{args.model} on {described}")
            print(f"wrote {png}")
        except ImportError as exc:
            print(f"no learning curve picture: {exc}")
    print(f"wrote {ckpt_path} and {os.path.join(args.out, 'history.json')}")
    return 0


# --------------------------------------------------------------------------------------------- export
def export(args) -> int:
    """Rebuilds the model a checkpoint records (or --model names) and writes it as ONNX."""
    import nnx
    from . import models

    try:
        ckpt = nnx.load(args.checkpoint)
    except (OSError, nnx.CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # A training checkpoint holds the state dict under "model" and the architecture in "extra";
    # a file written by nnx.save(model.state_dict()) holds the state dict itself.
    state = ckpt["model"] if isinstance(ckpt.get("model"), dict) else ckpt
    name = args.model or (ckpt.get("extra") or {}).get("model")
    if name not in models.MODELS:
        print(f"error: {args.checkpoint} does not record a known architecture ({name!r}); name it with "
              f"--model ({', '.join(sorted(models.MODELS))})", file=sys.stderr)
        return 1
    model = models.build(name)
    try:
        model.load_state_dict(state)
        nnx.onnx.export(model, np.zeros((1, 1, 28, 28), np.float32), args.output, opset=args.opset,
                        dynamic_batch=not args.static_batch)
    except (ImportError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    batch = 1 if args.static_batch else "batch"
    print(f"wrote {args.output}: {name} ({sum(p.data.size for p in model.parameters())} parameters), opset "
          f"{args.opset}; input 'input' ({batch}, 1, 28, 28) float32 -> output 'output' ({batch}, 10) logits")
    return 0


# --------------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nnx", description="nnx: neural-network training on CPUs")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="two-layer network on nnx.ops vs nnx.reference: loss curves and speed-up")
    d.add_argument("--steps", type=int, default=500)
    d.add_argument("--lr", type=float, default=0.1)
    d.add_argument("--every", type=int, default=50, help="print the loss every this many steps")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--threads", type=int, default=None)
    d.add_argument("--float64", action="store_true", help="run in float64 instead of float32")
    t = sub.add_parser("train", help="train an image classifier with checkpoints and learning curves")
    t.add_argument("--model", choices=["mlp", "lenet5", "convnet", "convnet_bn", "lstm", "gru", "rnn"],
                   default="lenet5", help="lstm, gru, rnn: a recurrent layer reading the image row by row")
    t.add_argument("--dataset", choices=["fashion-mnist", "mnist", "sample"], default="fashion-mnist")
    t.add_argument("--data-root", default=None, help="directory holding the IDX files (else $NNX_DATA, "
                                                     "/usr/share/datasets)")
    t.add_argument("--epochs", type=int, default=1, help="total number of epochs (a resumed run counts the "
                                                         "ones already done)")
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--lr", type=float, default=0.02)
    t.add_argument("--momentum", type=float, default=0.9)
    t.add_argument("--weight-decay", type=float, default=0.0, help="L2 regularisation (SGD weight_decay)")
    t.add_argument("--schedule", choices=["cosine", "constant"], default="cosine",
                   help="learning rate over the epochs: cosine annealing to zero (default) or constant")
    t.add_argument("--augment", default=None, help="augment training images: comma-separated crop, flip, "
                                                    "translate, cutout (nnx.data.augment)")
    t.add_argument("--threads", type=int, default=None)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--limit", type=int, default=0, help="use only the first N training images (quick runs)")
    t.add_argument("--out", default=None, help="output directory (default runs/<model>)")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    t.add_argument("--no-progress", action="store_true", help="no progress bar or per-epoch lines")
    t.add_argument("--scale-lr", action="store_true",
                   help="under mpiexec, multiply --lr by the number of ranks (the global batch grows with "
                        "them); without it the learning rate is used as given")
    e = sub.add_parser("export", help="write a checkpoint's model as ONNX (needs the onnx extra)")
    e.add_argument("checkpoint", help="a checkpoint from `nnx train` (or an nnx.save'd state dict with --model)")
    e.add_argument("output", help="the .onnx file to write")
    e.add_argument("--model", default=None, help="architecture, a name of nnx.models.MODELS (default: the one "
                                                  "the checkpoint records)")
    e.add_argument("--opset", type=int, default=17)
    e.add_argument("--static-batch", action="store_true", help="fix the batch size to 1 instead of leaving it free")
    from .charlm import add_commands as add_charlm_commands
    add_charlm_commands(sub)
    t.add_argument("--no-compile", action="store_true",
                   help="run every training step eagerly instead of capturing it with nnx.compile (same results)")
    return p


def _positive(parser, args, names):
    for name in names:
        v = getattr(args, name)
        if v is not None and v < 1:
            parser.error(f"--{name.replace('_', '-')}: expected a positive integer, got {v}")


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import nnx

    if args.command == "demo":
        _positive(parser, args, ["steps", "every", "threads"])
        if args.threads:
            nnx.set_num_threads(args.threads)
        return demo(args.steps, args.lr, args.every, args.seed, np.float64 if args.float64 else np.float32)
    if args.command == "export":
        return export(args)
    if args.command in ("charlm", "generate"):
        from .charlm import run as run_charlm
        return run_charlm(parser, args)
    _positive(parser, args, ["epochs", "batch_size", "threads"])
    if args.limit < 0:
        parser.error(f"--limit: expected a non-negative integer, got {args.limit}")
    if args.augment is not None:
        from .data.augment import build_augmentation
        try:
            build_augmentation(args.augment)
        except ValueError as exc:
            parser.error(f"--{exc}")
    if args.out is None:
        args.out = os.path.join("runs", args.model)
    try:
        return train(args)
    except KeyboardInterrupt:  # before fit started (loading data, building the model)
        print("\ninterrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
