"""Prune an Optuna study's trials at step W when the grokking forecaster gives them a low P(grok).

    .venv/bin/python examples/optuna_pruning.py --forecaster forecaster.json --trials 12

Each trial trains the plain PyTorch transformer of ``plain_pytorch_monitor.py`` (same
directory) on (a + b) mod p with a suggested train fraction and weight decay. A
``TrialReporter`` records the sweep log's signals as it trains; at step W, ``GrokPruner``
prunes the trial if the forecaster's P(grok) is below ``--stop-below``. A trial that is not
pruned trains to the end and returns its max val accuracy (at logged steps). Needs the
optuna extra (``pip install -e '.[optuna]'``). The forecaster (``grokcast fit``) should come
from a sweep trained like these runs: same task, model shape, optimiser and log schedule.
"""

from __future__ import annotations

import argparse

import optuna
import torch
import torch.nn.functional as F
from plain_pytorch_monitor import Transformer, fit_metrics, modular_addition

from grokcast.integrations.optuna import GrokPruner, TrialReporter
from grokcast.monitor import GrokMonitor


def objective(trial: optuna.Trial, args: argparse.Namespace) -> float:
    # The ranges of the paper grid (configs/paper.toml): the forecaster has seen no run outside.
    train_frac = trial.suggest_float("train_frac", 0.3, 0.6)
    weight_decay = trial.suggest_float("weight_decay", 0.3, 10.0, log=True)
    torch.manual_seed(args.seed + trial.number)
    model = Transformer(args.p)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98),
                                  weight_decay=weight_decay)
    (x_tr, y_tr), (x_va, y_va) = modular_addition(args.p, train_frac, 0, torch.device("cpu"))
    reporter = TrialReporter(trial, model.embed.weight, model.unembed.weight,
                             forecaster=args.forecaster)  # W comes from the file
    best = 0.0
    for step in range(args.steps + 1):
        optimizer.zero_grad()
        logits = model(x_tr)
        F.cross_entropy(logits, y_tr).backward()
        metrics = {}
        if reporter.wants(step):  # logged steps need the fit statistics at these weights
            metrics = fit_metrics(model, logits, y_tr, x_va, y_va)
            best = max(best, metrics["val_acc"])
        # observe() is True on the step that completes the window: the pruner's moment.
        if reporter.observe(step, model, **metrics) and trial.should_prune():
            trial.set_user_attr("pruned_at", step)
            raise optuna.TrialPruned()
        if step < args.steps:
            optimizer.step()
    return best


def trial_line(t: optuna.trial.FrozenTrial, pruner: GrokPruner) -> str:
    p = pruner.p_grok(t)
    head = (f"trial {t.number:>2} (train_frac {t.params['train_frac']:.2f}, weight_decay "
            f"{t.params['weight_decay']:.3g}): P(grok) = "
            + ("not reported" if p is None else f"{p:.3f}"))
    if t.state == optuna.trial.TrialState.PRUNED:
        return f"{head}, pruned at step {t.user_attrs['pruned_at']}"
    return f"{head}, {t.state.name.lower()}: max val_acc {t.value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forecaster", required=True, help="forecaster file from `grokcast fit`")
    parser.add_argument("--trials", type=int, default=12, help="trials (default 12)")
    parser.add_argument("--steps", type=int, default=10_000,
                        help="optimizer steps of a trial that is not pruned (default 10000)")
    parser.add_argument("--stop-below", "--threshold", dest="threshold", type=float, default=0.1,
                        help="prune when P(grok) < this (default 0.1; `grokcast early-stop-study` "
                             "shows what each threshold saves and loses on held-out runs)")
    parser.add_argument("--p", type=int, default=23)
    parser.add_argument("--seed", type=int, default=0, help="seeds the sampler and the trials")
    args = parser.parse_args()
    if args.trials < 1:
        parser.error(f"--trials {args.trials} is not allowed: expected an integer >= 1")
    if args.p < 2:
        parser.error(f"--p {args.p} is not allowed: expected an integer >= 2")
    if not 0 <= args.threshold <= 1:  # here, not as GrokPruner's threshold=, the name typed
        parser.error(f"--stop-below {args.threshold:g} is not allowed: expected a number in [0, 1]")
    pruner = GrokPruner(args.forecaster, threshold=args.threshold)
    # A trial reports one step past the last step below W the forecaster reads (W where it reads
    # W - 1): the step a monitor of the trials' model forecasts at, and the sweep's rule decides.
    probe = Transformer(args.p)
    due = GrokMonitor(probe.embed.weight, probe.unembed.weight,
                      forecaster=args.forecaster).forecast_step
    if args.steps < due:
        parser.error(f"--steps {args.steps} is too short for the forecast window "
                     f"W={pruner.window}: a trial reports at step {due}, so none could be pruned")

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", pruner=pruner,
                                sampler=optuna.samplers.TPESampler(seed=args.seed))
    # Each trial's line as it ends: a study of full-length trials takes minutes.
    show = lambda study, t: print(trial_line(t, pruner), flush=True)  # noqa: E731
    study.optimize(lambda trial: objective(trial, args), n_trials=args.trials, callbacks=[show])

    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    # W, or the first logged step after it where the log is sparse
    steps = (sum(t.user_attrs["pruned_at"] for t in pruned)
             + (len(study.trials) - len(pruned)) * args.steps)
    print(f"{len(pruned)} of {len(study.trials)} trials pruned at W = {pruner.window}: "
          f"{steps} of {len(study.trials) * args.steps} optimizer steps trained "
          f"({1 - steps / (len(study.trials) * args.steps):.0%} saved)")


if __name__ == "__main__":
    try:
        main()
    except (ValueError, OSError) as err:  # a bad forecaster file: one line
        raise SystemExit(f"optuna_pruning.py: error: {err}") from None
