"""Forecast grokking from inside your own PyTorch training loop with GrokMonitor.

    .venv/bin/python examples/plain_pytorch_monitor.py --forecaster forecaster.json --steps 10000

A plain loop (not grokcast's trainer): a small nn.Module transformer learns (a + b) mod p with
full-batch AdamW. The monitor records the sweep log's signals as it trains, prints the
forecast once the first W steps are in, and the loop runs on to show the outcome. The
forecaster (``grokcast fit``) should come from a sweep trained like this run: same task,
model shape, optimiser and log schedule; only the fraction, weight decay and seed vary.
"""

from __future__ import annotations

import argparse
import math
import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from grokcast.monitor import GrokMonitor, logit_stats


class Transformer(nn.Module):
    """One attention layer and a ReLU MLP, no LayerNorm, no biases: the paper's model (§2)."""

    def __init__(self, p: int, d_model: int = 64, n_heads: int = 4, d_mlp: int = 256) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.embed = nn.Embedding(p + 1, d_model)  # tokens 0..p-1 and '='
        self.pos = nn.Parameter(torch.randn(3, d_model))
        self.qkv = nn.ModuleList(nn.Linear(d_model, d_model, bias=False) for _ in range(3))
        self.out = nn.Linear(d_model, d_model, bias=False)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_mlp, bias=False), nn.ReLU(),
                                 nn.Linear(d_mlp, d_model, bias=False))
        self.unembed = nn.Linear(d_model, p + 1, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits at the '=' position: (N, 3) tokens -> (N, p + 1)."""
        n, t = tokens.shape
        x = self.embed(tokens) + self.pos  # (N, T, d)
        q, k, v = (f(x).reshape(n, t, self.n_heads, -1).transpose(1, 2) for f in self.qkv)
        causal = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        scores = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).masked_fill(causal, -math.inf)
        x = x + self.out((scores.softmax(-1) @ v).transpose(1, 2).reshape(n, t, -1))
        x = x + self.mlp(x)
        return self.unembed(x[:, -1])


def modular_addition(p: int, train_frac: float, split_seed: int, device: torch.device):
    """All p*p inputs [a, b, =] with labels (a + b) mod p, split into train and validation."""
    a, b = torch.cartesian_prod(torch.arange(p), torch.arange(p)).T
    tokens = torch.stack([a, b, torch.full_like(a, p)], 1).to(device)
    labels = ((a + b) % p).to(device)
    perm = torch.randperm(p * p, generator=torch.Generator().manual_seed(split_seed)).to(device)
    n_train = round(train_frac * p * p)
    tr, va = perm[:n_train], perm[n_train:]
    return (tokens[tr], labels[tr]), (tokens[va], labels[va])


@torch.no_grad()
def fit_metrics(model: nn.Module, train_logits: torch.Tensor, y_tr: torch.Tensor,
                x_va: torch.Tensor, y_va: torch.Tensor) -> dict[str, float]:
    """The fit statistics a logged step gives ``observe``, at the model's current weights."""
    train, val = logit_stats(train_logits, y_tr), logit_stats(model(x_va), y_va)
    return dict(train_loss=train["loss"], train_acc=train["acc"], train_margin=train["margin"],
                val_loss=val["loss"], val_acc=val["acc"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forecaster", help="forecaster file from `grokcast fit` (optional)")
    parser.add_argument("--steps", type=int, default=10_000, help="optimizer steps (default 10000)")
    parser.add_argument("--p", type=int, default=23)
    parser.add_argument("--train-frac", type=float, default=0.5)
    parser.add_argument("--weight-decay", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-log",
                        help="write the monitor's log as CSV (for `grokcast forecast`)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    if args.p < 2:
        parser.error(f"--p {args.p} is not allowed: expected an integer >= 2")
    if not 0 < args.train_frac < 1:
        parser.error(f"--train-frac {args.train_frac} is not allowed: expected 0 < f < 1")
    if args.steps < 0:
        parser.error(f"--steps {args.steps} is not allowed: expected an integer >= 0")
    if not re.fullmatch(r"cpu|cuda(:\d+)?", args.device):
        parser.error(f"--device {args.device!r} is not allowed: expected cpu or cuda[:N]")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device!r}, but torch.cuda.is_available() is False")
    if args.save_log and not Path(args.save_log).resolve().parent.is_dir():  # now, not after training
        parser.error(f"--save-log {args.save_log!r}: its directory does not exist")

    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    model = Transformer(args.p).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98),
                                  weight_decay=args.weight_decay)
    (x_tr, y_tr), (x_va, y_va) = modular_addition(args.p, args.train_frac, 0, device)
    monitor = GrokMonitor(model.embed.weight, model.unembed.weight, forecaster=args.forecaster,
                          run_id=f"f{args.train_frac:g}-wd{args.weight_decay:g}-s{args.seed}")
    if monitor.forecaster is not None and args.steps < monitor.forecast_step:
        parser.error(f"--steps {args.steps} is too short for the forecast window "
                     f"W={monitor.window}: its forecast comes at step {monitor.forecast_step}")

    # A bar on stderr (gone when done): 10,000 steps take minutes on a CPU, silent after W.
    for step in tqdm(range(args.steps + 1), desc="training", unit="step", leave=False):
        optimizer.zero_grad()
        logits = model(x_tr)
        F.cross_entropy(logits, y_tr).backward()
        # Logged steps need the fit statistics at these weights.
        metrics = fit_metrics(model, logits, y_tr, x_va, y_va) if monitor.wants(step) else {}
        monitor.observe(step, model, **metrics)  # after backward, before optimizer.step()
        if step == monitor.forecast_step:  # d + 1: W where the forecaster reads step W - 1
            seen = monitor.log[monitor.log["step"] <= monitor.last_read_step]  # what it reads
            tqdm.write(f"step {int(seen['step'].iloc[-1])}: train_acc {seen['train_acc'].iloc[-1]:.3f}, "
                  f"max val_acc so far {seen['val_acc'].max():.3f}")
            if monitor.forecaster is not None:
                fc = monitor.forecast()
                up = ", ".join(e["feature"] for e in fc["pushed_up"]) or "-"
                down = ", ".join(e["feature"] for e in fc["pushed_down"]) or "-"
                tqdm.write(f"  forecast from steps 0..{monitor.last_read_step}: P(grok) = {fc['p_grok']:.3f}"
                      f"\n  pushed up by {up}; pushed down by {down}")
        if step < args.steps:
            optimizer.step()

    log = monitor.log
    max_acc = log["val_acc"].max()
    meta = getattr(monitor.forecaster, "metadata_", None)
    threshold = getattr(meta, "threshold", 0.9)
    hit = log.loc[log["val_acc"] >= threshold, "step"]
    print(f"step {args.steps}: val_acc {log['val_acc'].iloc[-1]:.3f} at the last logged step "
          f"({int(log['step'].iloc[-1])}), "
          f"max val_acc {max_acc:.3f}"
          + (f" (first >= {threshold:g} at step {int(hit.iloc[0])})" if len(hit) else ""))
    if monitor.forecaster is not None:
        grokked = max_acc >= threshold
        print(f"outcome: {'grokked' if grokked else 'did not grok'} "
              f"(max val_acc {'>=' if grokked else '<'} {threshold:g})")
        # P(grok) is of grokking within the forecaster's training runs' steps, not these.
        note = meta.horizon_note(args.steps, "this run") if meta is not None else None
        if note:
            print(f"note: {note}")
    if args.save_log:
        log.to_csv(args.save_log, index=False)
        print(f"wrote the log ({len(log)} rows) to {args.save_log}")


if __name__ == "__main__":
    try:
        main()
    except (ValueError, OSError, AssertionError) as err:  # bad file, bad device: one line
        raise SystemExit(f"plain_pytorch_monitor.py: error: {err}") from None
