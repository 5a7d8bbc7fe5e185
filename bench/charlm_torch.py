"""The character model of `python -m nnx charlm` trained by PyTorch on exactly the same terms: the same
text, vocabulary and validation split, the same batches (window offsets drawn from the same seeded
generators), the same initial weights (nnx's initialisation, loaded into the PyTorch model), Adam with the
same learning rate and gradient clipping. Prints the validation loss after each epoch, to set beside
nnx's (`python -m nnx charlm` with the same flags).

    python bench/charlm_torch.py [--text FILE] [--epochs 2] [--steps-per-epoch 300] [--threads 1]
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--text", default=None)
    ap.add_argument("--model", choices=["lstm", "gru", "rnn"], default="lstm")
    ap.add_argument("--hidden-size", type=int, default=256)
    ap.add_argument("--embed-size", type=int, default=64)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--steps-per-epoch", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--clip", type=float, default=5.0)
    ap.add_argument("--val-fraction", type=float, default=0.05)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import torch

    import nnx
    from nnx import charlm, models

    torch.set_num_threads(args.threads)
    text = charlm.load_text(args.text)
    if args.limit:
        text = text[:args.limit]
    vocab = charlm.Vocab(text)
    train_ids, val_ids = charlm.split(vocab.encode(text), args.val_fraction, args.seq_len)
    nnx.manual_seed(args.seed)  # nnx's initial weights, as `python -m nnx charlm` draws them
    init = models.CharLM(len(vocab), args.embed_size, args.hidden_size, args.model).state_dict()
    V = len(vocab)
    layer = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[args.model]

    class LM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(V, args.embed_size)
            self.rnn = layer(args.embed_size, args.hidden_size, batch_first=True)
            self.fc = torch.nn.Linear(args.hidden_size, V)

        def forward(self, ids):
            return self.fc(self.rnn(self.embed(ids))[0])

    model = LM()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in init.items()})
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = torch.nn.CrossEntropyLoss()

    def validation_loss():
        n = (len(val_ids) - 1) // args.seq_len
        x = torch.from_numpy(val_ids[:n * args.seq_len].reshape(n, args.seq_len))
        y = torch.from_numpy(val_ids[1:n * args.seq_len + 1].reshape(n, args.seq_len))
        total = 0.0
        model.eval()
        with torch.no_grad():
            for i in range(0, n, 64):
                total += float(torch.nn.functional.cross_entropy(model(x[i:i + 64]).reshape(-1, V),
                                                                 y[i:i + 64].reshape(-1), reduction="sum"))
        model.train()
        return total / (n * args.seq_len)

    for epoch in range(args.epochs):
        rng = np.random.default_rng([args.seed, epoch])  # the same windows as nnx's charlm
        t0, total = time.perf_counter(), 0.0
        for _ in range(args.steps_per_epoch):
            x, y = charlm.random_windows(train_ids, args.batch_size, args.seq_len, rng)
            opt.zero_grad()
            loss = loss_fn(model(torch.from_numpy(x)).reshape(-1, V), torch.from_numpy(y).reshape(-1))
            loss.backward()
            if args.clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            opt.step()
            total += float(loss.item())
        val = validation_loss()
        print(f"epoch {epoch + 1}: train loss {total / args.steps_per_epoch:.4f}, validation loss {val:.4f} nats "
              f"= {val / math.log(2):.3f} bits/char ({time.perf_counter() - t0:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
