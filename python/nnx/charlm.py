"""A character-level language model on plain text (Karpathy's char-rnn, on nnx): training with a validation
split, bits per character, checkpoints and --resume, and sampling at a temperature.

    python -m nnx charlm [--text FILE] [--model lstm|gru|rnn] [--epochs 10] [--out runs/charlm]
    python -m nnx generate [--out runs/charlm] [--length 400] [--temperature 0.8] [--prime "The "]

Without --text the corpus is every fortune file of Debian's `fortunes` package (apt-get install fortunes),
read from /usr/share/games/fortunes. The last --val-fraction of the text is held out; bits per character
is the validation cross-entropy in nats divided by ln 2.
"""
from __future__ import annotations

import math
import os
import sys
import time

import numpy as np

FORTUNES_DIR = "/usr/share/games/fortunes"


def load_text(path=None) -> str:
    """The text of `path`, or of every fortune file under FORTUNES_DIR when path is None."""
    if path is None:
        if not os.path.isdir(FORTUNES_DIR):
            raise FileNotFoundError(f"--text: no file given and no fortunes at {FORTUNES_DIR}; install Debian's "
                                    f"fortunes package (apt-get install fortunes) or pass --text FILE")
        names = sorted(n for n in os.listdir(FORTUNES_DIR)
                       if not n.endswith((".dat", ".u8")) and os.path.isfile(os.path.join(FORTUNES_DIR, n))
                       and not os.path.islink(os.path.join(FORTUNES_DIR, n)))
        parts = []
        for n in names:
            with open(os.path.join(FORTUNES_DIR, n), encoding="utf-8", errors="replace") as f:
                parts.append(f.read())
        text = "".join(parts)
        if not text:
            raise FileNotFoundError(f"--text: the fortune files under {FORTUNES_DIR} are empty; pass --text FILE")
        return text
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--text: no such file: {path}")
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    return text


class Vocab:
    """The characters of a text, in code-point order; ids are their positions."""

    def __init__(self, chars: str):
        self.chars = "".join(sorted(set(chars)))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        unknown = sorted(set(text) - set(self.index))
        if unknown:
            raise ValueError(f"text: characters not in the model's vocabulary: {''.join(unknown)!r}")
        return np.fromiter((self.index[c] for c in text), dtype=np.int64, count=len(text))

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


def split(ids: np.ndarray, val_fraction: float, seq_len: int):
    """(train ids, validation ids): the last val_fraction of the text is validation."""
    n_val = int(len(ids) * val_fraction)
    if len(ids) - n_val < seq_len + 2 or n_val < seq_len + 1:
        raise ValueError(f"--text: {len(ids)} characters are too few for a validation fraction of {val_fraction} "
                         f"and windows of --seq-len {seq_len}")
    return ids[:len(ids) - n_val], ids[len(ids) - n_val:]


def random_windows(ids: np.ndarray, batch: int, seq_len: int, rng):
    """(inputs, targets) of `batch` windows at random offsets: targets are the inputs shifted by one."""
    starts = rng.integers(0, len(ids) - seq_len - 1, size=batch)
    idx = starts[:, None] + np.arange(seq_len)[None, :]
    return ids[idx], ids[idx + 1]


def validation_loss(model, ids: np.ndarray, seq_len: int, batch: int = 64) -> float:
    """Mean cross-entropy (nats per character) over consecutive non-overlapping windows of the text."""
    import nnx
    from . import functional as F

    n = (len(ids) - 1) // seq_len
    x = ids[:n * seq_len].reshape(n, seq_len)
    y = ids[1:n * seq_len + 1].reshape(n, seq_len)
    total = 0.0
    was = model.training
    model.eval()
    with nnx.no_grad():
        for i in range(0, n, batch):
            logits, _ = model(x[i:i + batch])
            V = logits.shape[-1]
            total += float(F.cross_entropy(logits.reshape((-1, V)), y[i:i + batch].reshape(-1), reduction="sum").item())
    model.train(was)
    return total / (n * seq_len)


def sample(model, vocab: Vocab, length: int, temperature: float = 1.0, prime: str = "\n", seed: int = 0) -> str:
    """`length` characters drawn one at a time from softmax(logits / temperature), after the model has
    read `prime` (its state carried from step to step)."""
    import nnx

    if temperature <= 0:
        raise ValueError(f"temperature: expected a positive number, got {temperature}")
    if not prime:
        raise ValueError("prime: expected at least one character")
    rng = np.random.default_rng(seed)
    ids = vocab.encode(prime)[None, :]
    out = []
    model.eval()
    with nnx.no_grad():
        logits, state = model(ids)
        for _ in range(length):
            z = logits.numpy()[0, -1].astype(np.float64) / temperature
            p = np.exp(z - z.max())
            nxt = int(rng.choice(len(p), p=p / p.sum()))
            out.append(nxt)
            logits, state = model(np.array([[nxt]]), state)
    return vocab.decode(out)


def _config(args, vocab: Vocab) -> dict:
    return {"model": args.model, "hidden_size": args.hidden_size, "embed_size": args.embed_size,
            "num_layers": args.num_layers, "seq_len": args.seq_len, "batch_size": args.batch_size,
            "lr": args.lr, "clip": args.clip, "steps_per_epoch": args.steps_per_epoch,
            "val_fraction": args.val_fraction, "seed": args.seed, "text": args.text or FORTUNES_DIR,
            "vocab": vocab.chars}


def _build(cfg: dict):
    from . import models
    return models.CharLM(len(cfg["vocab"]), cfg["embed_size"], cfg["hidden_size"], cfg["model"], cfg["num_layers"])


def train(args) -> int:
    import nnx
    from . import functional as F
    from . import nn, optim
    from .train import Checkpoint, History, load_checkpoint

    if args.threads:
        nnx.set_num_threads(args.threads)
    try:
        text = load_text(args.text)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.limit:
        text = text[:args.limit]
    vocab = Vocab(text)
    ids = vocab.encode(text)
    try:
        train_ids, val_ids = split(ids, args.val_fraction, args.seq_len)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    nnx.manual_seed(args.seed)
    cfg = _config(args, vocab)
    model = _build(cfg)
    opt = optim.Adam(model.parameters(), lr=args.lr)
    os.makedirs(args.out, exist_ok=True)
    ckpt_path = os.path.join(args.out, "checkpoint.npz")
    start, history = 0, History()
    if args.resume:
        if not os.path.exists(ckpt_path):
            print(f"error: --resume: no checkpoint at {ckpt_path}", file=sys.stderr)
            return 1
        try:
            saved = nnx.load(ckpt_path).get("extra", {})
            different = [k for k, v in cfg.items() if saved.get(k) != v]
            if different:
                print(f"error: --resume: {ckpt_path} was made with different settings ({', '.join(different)})",
                      file=sys.stderr)
                return 1
            start, history, _ = load_checkpoint(ckpt_path, model, opt)
        except ValueError as exc:  # a corrupt file (CheckpointError) or another model's (StateDictError)
            print(f"error: --resume: {exc}", file=sys.stderr)
            return 1
        print(f"resuming from {ckpt_path} after epoch {start}")
    n_params = sum(p.data.size for p in model.parameters())
    print(f"char-level {args.model} ({n_params} parameters, vocabulary {len(vocab)}) on {cfg['text']}: "
          f"{len(train_ids)} train / {len(val_ids)} validation characters, epochs {start + 1}..{args.epochs} of "
          f"{args.steps_per_epoch} steps, batch {args.batch_size} x {args.seq_len}, Adam lr {args.lr}, "
          f"clip {args.clip}, {nnx.get_num_threads()} threads")
    # Window offsets come from a generator seeded by (seed, epoch), so a resumed run sees the same batches.
    checkpoint = Checkpoint(ckpt_path, model, opt, extra=cfg)
    for epoch in range(start, args.epochs):
        rng = np.random.default_rng([args.seed, epoch])
        t0, total = time.perf_counter(), 0.0
        model.train()
        for _ in range(args.steps_per_epoch):
            x, y = random_windows(train_ids, args.batch_size, args.seq_len, rng)
            opt.zero_grad()
            logits, _ = model(x)
            loss = F.cross_entropy(logits.reshape((-1, len(vocab))), y.reshape(-1))
            loss.backward()
            if args.clip:
                nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            opt.step()
            total += float(loss.item())
        secs = time.perf_counter() - t0
        val = validation_loss(model, val_ids, args.seq_len)
        history.append(epoch + 1, loss=total / args.steps_per_epoch, val_loss=val,
                       seconds=secs)
        print(f"epoch {epoch + 1}: train loss {total / args.steps_per_epoch:.4f}, validation loss {val:.4f} nats "
              f"= {val / math.log(2):.3f} bits/char ({secs:.1f} s)")
        checkpoint(epoch + 1, history)
        history.save_json(os.path.join(args.out, "history.json"))
    if len(history):
        print("sample (temperature 0.8):")
        print(sample(model, vocab, 200, 0.8, prime="\n", seed=args.seed))
    print(f"wrote {ckpt_path}")
    return 0


def generate(args) -> int:
    import nnx

    ckpt_path = args.checkpoint or os.path.join(args.out, "checkpoint.npz")
    if not os.path.exists(ckpt_path):
        print(f"error: --checkpoint: no checkpoint at {ckpt_path} (train one with python -m nnx charlm)",
              file=sys.stderr)
        return 1
    try:
        ckpt = nnx.load(ckpt_path)
        cfg = ckpt["extra"]
        model = _build(cfg)
        model.load_state_dict(ckpt["model"])
    except (ValueError, KeyError) as exc:
        print(f"error: --checkpoint: {ckpt_path} is not a charlm checkpoint ({exc})", file=sys.stderr)
        return 1
    vocab = Vocab(cfg["vocab"])
    try:
        print(args.prime + sample(model, vocab, args.length, args.temperature, args.prime, args.seed))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def add_commands(sub) -> None:
    """The `charlm` and `generate` subcommands of python -m nnx."""
    c = sub.add_parser("charlm", help="train a character-level language model on a text (default: fortunes)")
    c.add_argument("--text", default=None, help=f"a UTF-8 text file (default: the fortunes under {FORTUNES_DIR})")
    c.add_argument("--model", choices=["lstm", "gru", "rnn"], default="lstm")
    c.add_argument("--hidden-size", type=int, default=256)
    c.add_argument("--embed-size", type=int, default=64)
    c.add_argument("--num-layers", type=int, default=1)
    c.add_argument("--seq-len", type=int, default=64)
    c.add_argument("--batch-size", type=int, default=32)
    c.add_argument("--steps-per-epoch", type=int, default=500)
    c.add_argument("--epochs", type=int, default=10, help="total epochs (a resumed run counts the ones done)")
    c.add_argument("--lr", type=float, default=2e-3)
    c.add_argument("--clip", type=float, default=5.0, help="clip the gradient norm to this (0: no clipping)")
    c.add_argument("--val-fraction", type=float, default=0.05)
    c.add_argument("--limit", type=int, default=0, help="use only the first N characters (quick runs)")
    c.add_argument("--threads", type=int, default=None)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", default=os.path.join("runs", "charlm"))
    c.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    g = sub.add_parser("generate", help="sample text from a model trained with `charlm`")
    g.add_argument("--out", default=os.path.join("runs", "charlm"), help="the charlm run's output directory")
    g.add_argument("--checkpoint", default=None, help="a checkpoint file (default OUT/checkpoint.npz)")
    g.add_argument("--length", type=int, default=400)
    g.add_argument("--temperature", type=float, default=0.8)
    g.add_argument("--prime", default="\n", help="text the model reads before sampling")
    g.add_argument("--seed", type=int, default=0)


def run(parser, args) -> int:
    """Dispatches `charlm` / `generate` after checking the numeric options."""
    if args.command == "charlm":
        for name in ("hidden_size", "embed_size", "num_layers", "seq_len", "batch_size", "steps_per_epoch",
                     "epochs", "threads"):
            v = getattr(args, name)
            if v is not None and v < 1:
                parser.error(f"--{name.replace('_', '-')}: expected a positive integer, got {v}")
        if not 0 < args.val_fraction < 1:
            parser.error(f"--val-fraction: expected a fraction in (0, 1), got {args.val_fraction}")
        if args.limit < 0 or args.clip < 0:
            parser.error("--limit, --clip: expected non-negative values")
        return train(args)
    if args.length < 0:
        parser.error(f"--length: expected a non-negative integer, got {args.length}")
    if not args.temperature > 0:
        parser.error(f"--temperature: expected a positive number, got {args.temperature}")
    return generate(args)
