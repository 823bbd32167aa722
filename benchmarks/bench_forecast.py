"""Time loo_predictions against a plain leave-one-out loop of the scikit-learn pipeline.

    .venv/bin/python benchmarks/bench_forecast.py [--n-runs 48] [--n-features 28] [--seed 0]

Both sides see the same synthetic problem (the paper's size: 48 runs x 28 features). The
baseline is what the paper ran: ``make_pipeline(StandardScaler(), LogisticRegressionCV(
Cs=10, cv=3, solver="liblinear"))`` refit once per held-out run, at liblinear's default
tol=1e-4 unless --sklearn-tol says otherwise (max |dp| then mostly measures liblinear's
stopping error; --sklearn-tol 1e-10 shows the agreement of the two exact answers).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegressionCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from grokcast.logistic import loo_predictions


def sklearn_pipeline(tol: float, max_iter: int):
    """The paper's pipeline, spelled without arguments that scikit-learn >= 1.8 deprecates."""
    known = LogisticRegressionCV().get_params()
    kwargs = dict(Cs=10, cv=3, solver="liblinear", tol=tol, max_iter=max_iter, scoring=None)
    if "use_legacy_attributes" in known:
        kwargs.update(l1_ratios=(0.0,), use_legacy_attributes=False)
    else:
        kwargs.update(penalty="l2")
    return make_pipeline(StandardScaler(), LogisticRegressionCV(**kwargs))


def synthetic(n_runs: int, n_features: int, rng: np.random.Generator):
    """Correlated features on mixed scales; about a third of the runs are positive."""
    latent = rng.normal(size=(n_runs, 4))  # (n_runs, 4) shared factors
    mixing = rng.normal(size=(4, n_features))
    X = latent @ mixing + 0.7 * rng.normal(size=(n_runs, n_features))
    X = X * rng.uniform(0.01, 10.0, n_features) + rng.normal(size=n_features)
    y = (latent[:, 0] + 0.5 * latent[:, 1] + 0.6 * rng.normal(size=n_runs) > 0.4).astype(int)
    return X, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-runs", type=int, default=48)
    parser.add_argument("--n-features", type=int, default=28)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sklearn-tol", type=float, default=1e-4)
    parser.add_argument("--sklearn-max-iter", type=int, default=100)
    args = parser.parse_args()

    X, y = synthetic(args.n_runs, args.n_features, np.random.default_rng(args.seed))
    print(f"device: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {platform.python_version()}")
    print(f"problem: {len(y)} runs x {X.shape[1]} features, {int(y.sum())} positive")

    t0 = time.perf_counter()
    ours = loo_predictions(X, y)
    t_ours = time.perf_counter() - t0

    pipe = sklearn_pipeline(args.sklearn_tol, args.sklearn_max_iter)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # liblinear ConvergenceWarnings at the paper's tol
        ref = np.array([
            pipe.fit(np.delete(X, i, 0), np.delete(y, i)).predict_proba(X[i:i + 1])[0, 1]
            for i in range(len(y))
        ])
    t_ref = time.perf_counter() - t0

    print(f"grokcast loo_predictions: {t_ours:8.3f} s")
    print(f"sklearn loop (tol={args.sklearn_tol:g}): {t_ref:8.3f} s")
    print(f"speed-up: {t_ref / t_ours:.1f}x")
    print(f"max |dp|: {np.abs(ours - ref).max():.2e}")


if __name__ == "__main__":
    try:
        main()
    except ValueError as err:  # too few runs for the CV, a bad size: one line, not a trace
        raise SystemExit(f"bench_forecast.py: error: {err}") from None
