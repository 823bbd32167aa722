"""The multivariate predictor, GrokForecaster, and its JSON files.

The model is the paper's (§5): standardise the features, then an ℓ2-regularised logistic
regression whose C is chosen by an internal stratified 3-fold CV on accuracy, solved exactly
by :mod:`grokcast.logistic` (which also gives the leave-one-out, leave-one-group-out and
k-fold held-out predictions the analysis scores, and says where it differs from
scikit-learn).

Files: :meth:`GrokForecaster.save` writes one JSON document (no pickle) and
:meth:`GrokForecaster.load` validates it, raising :class:`ForecasterFileError` naming the
problem.
"""

from __future__ import annotations

import difflib
import json
import math
import numbers
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

import grokcast
from grokcast.logistic import (
    INTERCEPT_SCALING,
    MAX_CS,
    NO_FINITE_CHECK,
    TooFewRunsError,
    check_finite,
    check_not_huge,
    check_params,
    cv_fit,
    encode_binary,
    group_predictions,
    kfold_predictions,
    loo_predictions,
    resolve_Cs,
)
from grokcast.validation import check_int, check_number, unique_keys

# Hex digits of a training run's window digest in the file (grokcast.analysis.window_digests
# computes them): 64 bits, so a chance collision among a million runs has odds ~3e-8.
WINDOW_DIGEST_HEX = 16

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sk_validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    def _sk_validate_data(estimator, *args, **kwargs):
        return estimator._validate_data(*args, **kwargs)

__all__ = [
    "FORMAT_NAME", "FORMAT_VERSION", "ForecasterFileError", "ForecasterMetadata", "GrokForecaster",
    "as_forecaster", "check_window", "fitted_window",
    # Importable from here, where they were first documented, though they live in
    # grokcast.logistic since the solver moved there; GrokForecaster.fit raises TooFewRunsError.
    "MAX_CS", "TooFewRunsError", "group_predictions", "kfold_predictions", "loo_predictions",
]



def _numeric_data(estimator: Any, X: Any, *args: Any, **kwargs: Any) -> Any:
    """scikit-learn's ``validate_data``, naming the feature whose values are not numbers
    (numpy's error names only the value: "could not convert string to float: 'a'")."""
    try:
        return _sk_validate_data(estimator, X, *args, **kwargs)
    except (TypeError, ValueError) as err:
        column = _first_non_numeric(X)
        if column is None:
            raise
        # The same type: scikit-learn's estimator checks expect a TypeError for a dict value.
        why = str(err).splitlines()[0]  # scikit-learn's complex-data error goes on with the data
        raise type(err)(f"feature {column!r} is not allowed: its values must be numbers ({why})") from None


def _first_non_numeric(X: Any) -> Any:
    """The name (a DataFrame's) or index of the first column that does not read as floats."""
    if hasattr(X, "columns"):  # column by column: as one array, one complex column makes all so
        named = [(name, np.asarray(X.iloc[:, j], dtype=object)) for j, name in enumerate(X.columns)]
    else:
        try:
            values = np.asarray(X, dtype=object)
        except (TypeError, ValueError):
            return None
        if values.ndim != 2:
            return None
        named = [(j, values[:, j]) for j in range(values.shape[1])]
    for name, column in named:
        try:
            if any(isinstance(v, str | bytes | complex | np.complexfloating) for v in column):
                raise ValueError
            column.astype(np.float64)
        except (TypeError, ValueError):
            return name
    return None


FORMAT_NAME = "grokcast.forecaster"
FORMAT_VERSION = 1


class ForecasterFileError(ValueError):
    """A saved forecaster file is unreadable, malformed or incompatible."""


@dataclass(frozen=True)
class ForecasterMetadata:
    """What a saved forecaster was trained on (read back by :meth:`GrokForecaster.load`)."""

    window: int
    threshold: float
    sweep_hash: str
    n_train_runs: int
    grokcast_version: str
    # The logged steps below W that the training runs' features came from; None in files
    # written before grokcast recorded them.
    window_steps: tuple[int, ...] | None = None
    # The training sweep's task (SweepConfig.task(): p, model, optimiser); None in older files.
    task: dict[str, Any] | None = None
    # The training runs' window digests (grokcast.analysis.window_digests), sorted; None in
    # older files and where save() was not given them.
    train_digests: tuple[str, ...] | None = None
    # The steps the training runs trained for: "groks" in their labels means within them.
    # None in older files and where save() was not given it.
    label_steps: int | None = None
    # The training runs' held-out P(grok) (the fit's leave-one-out or k-fold predictions) and
    # labels, as (P, label) pairs sorted: what a stopping threshold can be chosen on without
    # the outcomes of the runs it will stop. None in older files and where save() was not given them.
    train_heldout: tuple[tuple[float, int], ...] | None = None

    def horizon_note(self, n_steps: int, where: str) -> str | None:
        """What to say when runs of ``n_steps`` steps are scored against this forecaster's
        labels, observed within :attr:`label_steps` (None when they agree or it is unknown)."""
        if self.label_steps is None or n_steps == self.label_steps:
            return None
        return (f"{where} trained for {n_steps:,} steps, the forecaster's training runs for "
                f"{self.label_steps:,}: its P(grok) means grokking within "
                f"{self.label_steps:,} steps, the outcomes here within {n_steps:,}")

    def check_task(self, task: dict[str, Any], where: str) -> None:
        """Refuse runs of another task than the forecaster's training runs (where recorded):
        their features would be read on another scale, and P(grok) would mean nothing."""
        if self.task is None:
            return
        diffs = [f"{key} {theirs!r} (the forecaster's: {mine!r})"
                 for key, mine, theirs in _differences(self.task, task)]
        if diffs:
            raise ValueError(f"{where} holds runs of another task than the forecaster was fit on: "
                             f"{'; '.join(diffs)}; fit a forecaster on a sweep of this task")

    def required_steps(self) -> tuple[int, ...]:
        """The steps below W a log must hold to be forecast: those the fit's features read,
        or, for a file that does not record them, every step below W."""
        return self.window_steps if self.window_steps is not None else tuple(range(self.window))

    def last_read_step(self) -> int:
        """d, the last of the :meth:`required_steps`: the row the live stop rule decides on
        (``grokcast sweep --stop-model``, ``GrokMonitor``), after which a stopped run has
        trained d + 1 steps."""
        return max(self.required_steps())

    def missing_steps(self, logged: Iterable[int]) -> list[int]:
        """The :meth:`required_steps` that a log schedule's ``logged`` steps leave out."""
        logged = set(logged)
        return [t for t in self.required_steps() if t not in logged]

    def steps_hint(self) -> str:
        """What to add to an error about missing steps: why a file without steps needs all."""
        if self.window_steps is not None:
            return ""
        return ("; this forecaster file does not record the steps its features came from "
                "(window_steps: older files, and a save() without them), so it needs every step "
                "below W: refit it with grokcast fit, or save it with window_steps=, to record them")


# ----------------------------------------------------------------------------- the estimator

class GrokForecaster(ClassifierMixin, BaseEstimator):
    """Standardise → ℓ2 logistic regression with C chosen by internal stratified CV.

    Equivalent to ``make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=Cs, cv=cv,
    solver="liblinear"))`` (accuracy scoring, first best C, refit on all rows), solved
    exactly; see :mod:`grokcast.logistic` for the few deliberate differences.

    Parameters
    ----------
    Cs : int or sequence of float, default=10
        Grid of C; an int means ``np.logspace(-4, 4, Cs)``.
    cv : int, default=3
        Number of stratified folds (no shuffling) used to choose C.
    tol : float, default=1e-10
        Newton stopping tolerance: the last step, relative to ``max(1, ‖w̃‖∞)``.
    max_iter : int, default=100
        Newton iterations per fit (≈ 20 suffice even for C = 1e4 on separable data).

    Attributes
    ----------
    classes_ : ndarray of shape (2,)
        The labels, sorted; ``classes_[1]`` is the positive class.
    scaler_mean_, scaler_scale_ : ndarray of shape (n_features,)
        The standardisation, as StandardScaler's ``mean_`` and ``scale_``.
    coef_ : ndarray of shape (1, n_features)
        Coefficients on the *standardised* features (as the pipeline's LogisticRegressionCV).
    intercept_ : ndarray of shape (1,)
    C_ : float
        The chosen C.
    Cs_ : ndarray of shape (n_Cs,)
    scores_ : ndarray of shape (cv, n_Cs)
        Inner-fold accuracy of each C. A diagnostic of the fit: not saved, so a forecaster
        returned by :meth:`load` lacks it.
    n_iter_ : ndarray of shape (1,)
        Newton steps of the final refit; not saved either.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features,)
        Only when fit on a DataFrame with string column names.
    metadata_ : ForecasterMetadata
        Only on a forecaster returned by :meth:`load` (fitting it again removes it).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(30, 4))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> model = GrokForecaster().fit(X, y)
    >>> model.predict_proba(X[:2]).shape
    (2, 2)
    """

    def __init__(self, Cs: int | Sequence[float] = 10, cv: int = 3, tol: float = 1e-10,
                 max_iter: int = 100) -> None:
        self.Cs = Cs
        self.cv = cv
        self.tol = tol
        self.max_iter = max_iter

    def __sklearn_tags__(self):  # scikit-learn >= 1.6
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def _more_tags(self) -> dict[str, bool]:  # scikit-learn < 1.6
        return {"binary_only": True}

    def _feature_names(self) -> list[str] | None:
        names = getattr(self, "feature_names_in_", None)
        return None if names is None else [str(s) for s in names]

    def fit(self, X: Any, y: Any) -> GrokForecaster:
        """Standardise, choose C by cross-validation, refit on all rows.

        Parameters
        ----------
        X : array-like of shape (n_runs, n_features)
            Finite features; a DataFrame's column names are kept.
        y : array-like of shape (n_runs,)
            Binary labels; both classes must occur.

        Returns
        -------
        self : GrokForecaster

        Raises
        ------
        grokcast.logistic.TooFewRunsError
            Both classes with fewer runs than ``cv``, too few for the stratified folds that
            choose C (one class smaller than ``cv`` is fit, as scikit-learn's folds allow).
        """
        Cs = resolve_Cs(self.Cs)
        check_params(self.cv, self.tol, self.max_iter)
        X_arr, y_arr = _numeric_data(self, X, y, dtype=np.float64, **NO_FINITE_CHECK)
        check_finite(X_arr, self._feature_names())
        check_not_huge(X_arr, self._feature_names())
        self.classes_, y01 = encode_binary(y_arr)

        fit = cv_fit(X_arr, y01, [np.arange(len(y01))], Cs, cv=int(self.cv), tol=self.tol,
                      max_iter=int(self.max_iter))
        d = X_arr.shape[1]
        if not np.isfinite(fit.w).all():
            raise ValueError("the fit's coefficients overflowed float64: rescale the features")
        self.scaler_mean_ = fit.mean[0]
        self.scaler_scale_ = fit.scale[0]
        self.coef_ = fit.w[:, :d].copy()  # (1, d)
        self.intercept_ = INTERCEPT_SCALING * fit.w[:, d].copy()  # (1,)
        self.Cs_ = Cs
        self.C_ = float(Cs[fit.best[0]])
        self.scores_ = fit.scores[0]
        self.n_iter_ = fit.n_iter.copy()  # (1,)
        # A loaded forecaster fit again: what its file recorded describes the old fit.
        self.__dict__.pop("metadata_", None)
        # The features have the same names at every W: the table's own record of its W is
        # what lets save() refuse a window this fit did not read (None: a table without one).
        self._fit_table = _table_record(X)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Log-odds of ``classes_[1]``.

        Parameters
        ----------
        X : array-like of shape (n_runs, n_features)

        Returns
        -------
        ndarray of shape (n_runs,)
        """
        check_is_fitted(self)
        _check_table_window(X, getattr(self, "metadata_", None))
        X_arr = _numeric_data(self, X, reset=False, dtype=np.float64, **NO_FINITE_CHECK)
        check_finite(X_arr, self._feature_names())
        Z = (X_arr - self.scaler_mean_) / self.scaler_scale_
        with np.errstate(over="ignore", invalid="ignore"):  # refused below, by run
            log_odds = Z @ self.coef_[0] + self.intercept_[0]
        bad = np.flatnonzero(~np.isfinite(log_odds))
        if bad.size:
            raise ValueError(f"the log-odds of row(s) {bad[:5].tolist()} overflow: their features "
                             f"(largest |value| {np.abs(X_arr[bad]).max():.3g}) or the forecaster's "
                             f"coefficients (largest |coef| {np.abs(self.coef_).max():.3g}) are too "
                             "large for float64")
        return log_odds

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_runs, n_features)

        Returns
        -------
        ndarray of shape (n_runs, 2)
        """
        check_is_fitted(self)
        p = expit(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        """``classes_[1]`` where the decision function is positive, else ``classes_[0]``.

        Parameters
        ----------
        X : array-like of shape (n_runs, n_features)

        Returns
        -------
        ndarray of shape (n_runs,)
        """
        check_is_fitted(self)
        return self.classes_[(self.decision_function(X) > 0).astype(int)]

    # ------------------------------------------------------------------------- files

    def save(self, path: str | os.PathLike, *, window: int | None = None,
             threshold: float | None = None, sweep_hash: str | None = None,
             n_train_runs: int | None = None, window_steps: Sequence[int] | None = None,
             task: dict[str, Any] | None = None,
             train_digests: Iterable[str] | None = None,
             label_steps: int | None = None,
             train_heldout: tuple[Sequence[float] | np.ndarray, Sequence[int] | np.ndarray] | None = None,
             known_features: Sequence[str] | None = None) -> None:
        """Write the fitted forecaster as one JSON file (atomically: whole file or none).

        A forecaster returned by :meth:`load` saves what its file recorded (``metadata_``): an
        argument left out is taken from there, and one given must agree with it (a window
        other than the one the model was fit on would have it read other features). A refit
        forecaster has no ``metadata_``: ``window``, ``threshold``, ``sweep_hash`` and
        ``n_train_runs`` are then required, except ``window`` where it was fit on a table that
        records its window (:func:`grokcast.features.feature_table`'s ``attrs``): that window,
        and the logged steps the table read, are then the defaults, and a ``window`` (or
        ``window_steps``) whose features are not the table's is refused.

        Parameters
        ----------
        path : path-like
        window : int, optional on a loaded forecaster (as are the three below)
            Early-training window (steps) the features were computed on; optional, too, after
            a fit on a table that records it.
        threshold : float
            max val_acc threshold that defined the labels, in (0, 1].
        sweep_hash : str
            Identifies the sweep the training runs came from.
        n_train_runs : int
            Number of runs it was trained on.
        window_steps : sequence of int, optional
            The logged steps below ``window`` the features were computed on (increasing, from
            0). Logs forecast later must hold them (``GrokForecaster.load`` reads them into
            ``metadata_.window_steps``); without them, every step below ``window`` is required.
            Defaults to those of the feature table the forecaster was fit on, where it records
            them (starting at step 0) and ``window`` is its own.
        task : dict, optional
            The training sweep's :meth:`grokcast.config.SweepConfig.task`; sweeps of another
            task are then refused by ``evaluate``, ``early-stop-study`` and ``--stop-model``.
        train_digests : iterable of str, optional
            The training runs' :func:`grokcast.analysis.window_digests` (the values); saved
            sorted as ``train_window_digests``, so that ``evaluate`` and ``early-stop-study``
            recognise a training run in another sweep.
        label_steps : int, optional
            The steps the training runs trained for (their sweep's ``n_steps``): a label says
            whether a run grokked within them. ``evaluate`` and ``early-stop-study`` note a
            sweep trained for another number of steps.
        train_heldout : (probabilities, labels), optional
            The training runs' held-out P(grok) (predicted by models fit without them, as
            ``grokcast fit``'s leave-one-out) and their labels; saved as sorted
            ``[P, label]`` pairs, not keyed by run. ``early-stop-study`` chooses its threshold
            on them.
        known_features : sequence of str, optional
            Allowed feature names; defaults to ``grokcast.features.FEATURE_NAMES``.
        """
        if not isinstance(path, str | os.PathLike):  # as load refuses it
            raise TypeError(f"path must be a str or os.PathLike naming the forecaster's JSON file, "
                            f"got {type(path).__name__}")
        check_is_fitted(self)
        names = self._feature_names()
        if names is None:
            raise ValueError("cannot save a forecaster fit without feature names: fit it on a "
                             "DataFrame whose columns are the feature names")
        _check_feature_names(names, known_features, ValueError)
        meta = self._metadata_to_save(dict(
            window=window, threshold=threshold, sweep_hash=sweep_hash, n_train_runs=n_train_runs,
            window_steps=window_steps, task=task, train_digests=train_digests,
            label_steps=label_steps, train_heldout=train_heldout))
        doc = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "grokcast_version": grokcast.__version__,
            "feature_names": names,
            "classes": [c.item() if isinstance(c, np.generic) else c for c in self.classes_],
            "scaler_mean": self.scaler_mean_.tolist(),
            "scaler_scale": self.scaler_scale_.tolist(),
            "coef": self.coef_[0].tolist(),
            "intercept": float(self.intercept_[0]),
            "C": self.C_,
            "Cs": self.Cs_.tolist(),
            "cv": int(self.cv),
            "tol": float(self.tol),
            "max_iter": int(self.max_iter),
            **meta,
        }
        # repr-precision floats make the round trip exact; allow_nan=False keeps it strict JSON.
        text = json.dumps(doc, indent=2, allow_nan=False) + "\n"
        from grokcast.store import atomic_write_bytes

        if Path(path).is_dir():  # the atomic rename would fail naming its temp file
            raise ValueError(f"path {str(path)!r} is a directory: expected the name of the "
                             "forecaster's JSON file")
        atomic_write_bytes(Path(path), text.encode("utf-8"))

    def _metadata_to_save(self, given: dict[str, Any]) -> dict[str, Any]:
        """The file's metadata keys from ``save``'s arguments and, on a loaded forecaster, its
        ``metadata_`` (which fills what is left out, and which what is given must match)."""
        meta = getattr(self, "metadata_", None)
        args = {k: v for k, v in given.items() if v is not None}
        if meta is None:
            record = getattr(self, "_fit_table", None)
            if record is not None:
                args.setdefault("window", record[0])
            missing = [k for k in ("window", "threshold", "sweep_hash", "n_train_runs") if k not in args]
            if missing:
                raise ValueError(f"save needs {', '.join(missing)}: this forecaster was not loaded "
                                 "from a file (no metadata_ to take them from)")
            doc = _metadata_document(**args)
            if record is not None:
                _check_saved_window(record, doc)
                # Without steps given, the window is the table's own (checked above): its steps
                # go in too, so that the loaded forecaster refuses a table of another schedule
                # at the same W. Steps a file cannot hold (a log not starting at step 0) stay
                # out, and the file keeps the window-alone check, as before.
                steps = record[1]
                if "window_steps" not in doc and _valid_window_steps(steps, doc["window"]):
                    doc = _metadata_document(**args, window_steps=steps)
            return doc
        heldout = meta.train_heldout
        recorded = {"window": meta.window, "threshold": meta.threshold, "sweep_hash": meta.sweep_hash,
                    "n_train_runs": meta.n_train_runs, "window_steps": meta.window_steps,
                    "task": meta.task, "train_digests": meta.train_digests,
                    "label_steps": meta.label_steps,
                    "train_heldout": None if heldout is None else tuple(zip(*heldout, strict=True))}
        ours = _metadata_document(**recorded)

        def differs(name: str, key: str, value: Any) -> ValueError:
            return ValueError(f"{name}={given[name]!r:.200} is not allowed: this forecaster was "
                              f"loaded with {key}={value!r:.200}; leave {name} out to keep it")

        # The single values first, each checked on its own and read as the file would hold it
        # (a window's recorded steps, or the training runs' count, would otherwise be blamed).
        scalars = ("window", "threshold", "sweep_hash", "n_train_runs", "label_steps")
        plain = {k: recorded[k] for k in scalars}
        for name in scalars:
            if name in args and name in ours:  # one the file lacks is added
                if _metadata_document(**{**plain, name: args[name]})[name] != ours[name]:
                    raise differs(name, name, ours[name])
        theirs = _metadata_document(**{**recorded, **args})
        for key in ours.keys() & theirs.keys():
            if ours[key] != theirs[key]:
                name = "train_digests" if key == "train_window_digests" else key
                raise differs(name, key, ours[key])
        return theirs

    @classmethod
    def load(cls, path: str | os.PathLike, *,
             known_features: Sequence[str] | None = None) -> GrokForecaster:
        """Read a file written by :meth:`save`, validating every field.

        Parameters
        ----------
        path : path-like
        known_features : sequence of str, optional
            Allowed feature names; defaults to ``grokcast.features.FEATURE_NAMES``.

        Returns
        -------
        GrokForecaster
            Fitted, with ``metadata_`` set; it predicts exactly as the saved one. Its ``Cs``
            parameter is the grid the saved one resolved (a list of floats, also where it was
            given as a count), and the fit diagnostics ``scores_`` and ``n_iter_`` are absent.

        Raises
        ------
        ForecasterFileError
            The file is not JSON, is truncated, lacks a key or has one it does not know, has a
            value of the wrong type or length, was written by an incompatible format version,
            or names an unknown feature.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike naming a forecaster JSON file, got "
                            f"{type(path).__name__}")
        path = Path(path)
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "does not exist"
            raise ForecasterFileError(f"forecaster file {str(path)!r} {what}: expected the JSON file "
                                      "that grokcast fit (or GrokForecaster.save) writes")
        doc = _read_json(path)
        try:
            return cls._from_document(doc, known_features)
        except ForecasterFileError as err:
            raise ForecasterFileError(f"{path}: {err}") from None

    @classmethod
    def _from_document(cls, doc: Any, known_features: Sequence[str] | None) -> GrokForecaster:
        """The forecaster a parsed file describes; ForecasterFileError (without the path,
        which :meth:`load` adds) naming the first field that is wrong."""
        fail = ForecasterFileError
        _check_keys(doc)
        names = doc["feature_names"]
        if not isinstance(names, list) or not names or not all(isinstance(s, str) for s in names):
            raise fail("'feature_names' must be a non-empty list of strings")
        _check_feature_names(names, known_features, fail, in_file=True)
        d = len(names)
        mean = _float_list(doc, "scaler_mean", d)
        scale = _float_list(doc, "scaler_scale", d)
        if np.any(scale < np.finfo(np.float64).tiny):  # 1e-320 would turn z into inf
            raise fail("'scaler_scale' must hold positive numbers (not subnormal)")
        coef = _float_list(doc, "coef", d)
        Cs = _float_list(doc, "Cs", None)
        intercept = _float(doc, "intercept")
        C = _float(doc, "C")
        if np.any(Cs <= 0) or C <= 0:
            raise fail("'C' and 'Cs' must be positive")
        classes = _check_classes(doc["classes"])
        if not isinstance(doc["grokcast_version"], str):
            raise fail("'grokcast_version' must be a string")
        meta = {k: doc[k] for k in ("window", "threshold", "sweep_hash", "n_train_runs")}
        _check_metadata(meta, fail)
        try:
            resolve_Cs(list(Cs))
            check_params(doc["cv"], doc["tol"], doc["max_iter"])
        except ValueError as err:
            raise fail(str(err)) from None

        model = cls(Cs=Cs.tolist(), cv=doc["cv"], tol=doc["tol"], max_iter=doc["max_iter"])
        model.classes_ = np.array(classes)
        model.n_features_in_ = d
        model.feature_names_in_ = np.array(names, dtype=object)
        model.scaler_mean_ = mean
        model.scaler_scale_ = scale
        model.coef_ = coef[None, :]
        model.intercept_ = np.array([intercept])
        model.C_ = C
        model.Cs_ = Cs
        model.metadata_ = _file_metadata(doc)
        return model


def _read_json(path: Path) -> Any:
    """A forecaster file's JSON, parsed strictly: no NaN or Infinity, no integer of more than
    300 digits, no key twice; ForecasterFileError naming ``path`` otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ForecasterFileError(f"{path}: not a forecaster JSON file (not UTF-8 text)") from err

    def reject_constant(name: str) -> None:
        raise ForecasterFileError(f"{path}: {name} is not allowed in a forecaster file")

    def parse_int(digits: str) -> int:  # past ~309 digits a float conversion overflows
        if len(digits.lstrip("-")) > 300:
            raise ForecasterFileError(f"{path}: an integer of {len(digits)} digits is not "
                                      "allowed in a forecaster file")
        return int(digits)

    try:
        return json.loads(text, parse_constant=reject_constant, parse_int=parse_int,
                          object_pairs_hook=unique_keys)
    except json.JSONDecodeError as err:
        raise ForecasterFileError(
            f"{path}: not valid JSON (truncated or corrupted?): {err.msg} (line "
            f"{err.lineno}, column {err.colno})"
        ) from err
    except RecursionError:
        raise ForecasterFileError(f"{path}: not a forecaster file: its JSON is nested too "
                                  "deeply") from None
    except ForecasterFileError:
        raise  # reject_constant's and parse_int's, which name the file
    except ValueError as err:  # unique_keys's
        raise ForecasterFileError(f"{path}: not a forecaster file: {err}") from None


def _check_keys(doc: Any) -> None:
    """Refuse a document that is not a forecaster file of this format version, or that lacks
    a key or has one the format does not know."""
    fail = ForecasterFileError
    if not isinstance(doc, dict):
        raise fail(f"expected a JSON object at the top level, got {type(doc).__name__}")
    for key in ("format", "format_version"):
        if key not in doc:
            raise fail(f"missing key {key!r}: not a forecaster file")
    if doc["format"] != FORMAT_NAME:
        raise fail(f"'format' is {doc['format']!r}, expected {FORMAT_NAME!r}")
    version = doc["format_version"]
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise fail(f"format_version {version!r} is not supported: this grokcast "
                   f"({grokcast.__version__}) reads format_version {FORMAT_VERSION}")
    missing = [k for k in _FILE_KEYS if k not in doc]
    if missing:
        raise fail(f"missing key(s) {', '.join(map(repr, missing))}")
    # A misspelt optional key would otherwise read as absent, and with it the check it
    # carries (a misspelt 'task': forecasts on another task, unchecked).
    allowed = ("format", "format_version", *_FILE_KEYS, *_OPTIONAL_KEYS)
    unknown = [k for k in doc if k not in allowed]
    if unknown:
        close = difflib.get_close_matches(unknown[0], allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise fail(f"unknown key(s) {', '.join(map(repr, unknown))}{hint}: allowed keys are "
                   f"{', '.join(allowed)}")


def _check_classes(classes: Any) -> list[Any]:
    """A file's ``classes``: two labels of one type, sorted as fit() stores them (P(grok) is
    the probability of classes[1], so a reversed pair would turn every forecast around)."""
    if (not isinstance(classes, list) or len(classes) != 2
            or not all(isinstance(c, (str, int, float)) for c in classes)
            or type(classes[0]) is not type(classes[1]) or not classes[0] < classes[1]):
        raise ForecasterFileError(f"'classes' must be two distinct labels of one type in "
                                  f"increasing order, got {classes!r}")
    return classes


def _file_metadata(doc: dict[str, Any]) -> ForecasterMetadata:
    """What a file records of the forecaster's training (its required keys already checked by
    ``_check_metadata``), each optional key validated where present (older files lack them)."""
    fail = ForecasterFileError
    window, n_train_runs = doc["window"], doc["n_train_runs"]
    steps = doc.get("window_steps")
    return ForecasterMetadata(
        window=window, threshold=float(doc["threshold"]),
        sweep_hash=doc["sweep_hash"], n_train_runs=n_train_runs,
        grokcast_version=doc["grokcast_version"],
        window_steps=None if steps is None else _check_window_steps(steps, window, fail),
        task=None if doc.get("task") is None else _check_task(doc["task"], fail),
        train_digests=None if doc.get("train_window_digests") is None
        else _check_digests(doc["train_window_digests"], fail),
        label_steps=None if doc.get("label_steps") is None
        else check_int("label_steps", doc["label_steps"], 1, error=fail),
        train_heldout=None if doc.get("train_heldout") is None
        else _check_heldout_pairs(doc["train_heldout"], n_train_runs, fail),
    )


def _metadata_document(window: Any, threshold: Any, sweep_hash: Any, n_train_runs: Any,
                       window_steps: Any = None, task: Any = None, train_digests: Any = None,
                       label_steps: Any = None, train_heldout: Any = None) -> dict[str, Any]:
    """``save``'s metadata arguments as the file's keys, validated and normalised."""
    meta = {"window": window, "threshold": threshold, "sweep_hash": sweep_hash,
            "n_train_runs": n_train_runs}
    _check_metadata(meta, ValueError)
    # The threshold as the project reads numbers: numpy's float32(0.9) is 0.9, not 0.89999997...
    meta = {"window": int(window), "threshold": check_number("threshold", threshold, 0, 1, closed="hi"),
            "sweep_hash": sweep_hash, "n_train_runs": int(n_train_runs)}
    if window_steps is not None:
        meta["window_steps"] = [int(t) for t in _check_window_steps(
            list(window_steps), meta["window"], ValueError)]
    if task is not None:
        meta["task"] = _check_task(json.loads(json.dumps(task)), ValueError)
    if train_digests is not None:
        digests = [] if isinstance(train_digests, str | bytes) else list(train_digests)
        if digests and all(isinstance(d, str) for d in digests):
            digests = sorted(set(digests))  # any order in, one order saved
        if not digests:
            raise ValueError(f"train_digests={train_digests!r} is not allowed: expected the "
                             "training runs' window digests (grokcast.analysis.window_digests)")
        meta["train_window_digests"] = list(_check_digests(digests, ValueError))
    if label_steps is not None:
        meta["label_steps"] = check_int("label_steps", label_steps, 1)
    if train_heldout is not None:
        meta["train_heldout"] = [list(pair) for pair in _heldout_pairs(
            train_heldout, meta["n_train_runs"])]
    return meta


def _check_task(task: Any, error: type[Exception]) -> dict[str, Any]:
    """A task as ``SweepConfig.task()`` writes it: p, model and optim, each setting valid and
    none missing (the monitor and the task checks read them)."""
    from grokcast.config import ConfigError, SweepConfig

    if not isinstance(task, dict) or not all(isinstance(k, str) for k in task):
        raise error(f"task={task!r:.200} is not allowed: expected a JSON object (a sweep config's "
                    "p, model and optim)")
    try:
        if set(task) != {"p", "model", "optim"}:
            raise ConfigError(f"its keys are {sorted(task)}: expected ['model', 'optim', 'p']")
        full = SweepConfig.from_dict(task).task()
    except (ConfigError, TypeError) as err:
        raise error(f"task={task!r:.200} is not allowed: {err}") from None
    missing = [key for key, _, theirs in _differences(full, task) if theirs is None]
    if missing:
        raise error(f"task={task!r:.200} is not allowed: it lacks {missing}")
    return task


def _differences(mine: Any, theirs: Any, key: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, mine, theirs) wherever two nested dicts of plain values differ."""
    if isinstance(mine, dict) and isinstance(theirs, dict):
        return [d for k in sorted(set(mine) | set(theirs))
                for d in _differences(mine.get(k), theirs.get(k), f"{key}.{k}" if key else k)]
    return [] if mine == theirs else [(key, mine, theirs)]


def as_forecaster(forecaster: Any) -> Any:
    """A fitted forecaster: ``forecaster`` itself, or the file ``grokcast fit`` wrote loaded.

    Anything with ``predict_proba`` passes, so a scikit-learn pipeline can stand in where only
    P(grok) is needed (the Optuna pruner); :class:`grokcast.monitor.GrokMonitor` and
    :func:`grokcast.tool.explain` also read a GrokForecaster's scaler, coefficients and
    feature names.
    """
    if isinstance(forecaster, (str, os.PathLike)):
        return GrokForecaster.load(forecaster)
    if not hasattr(forecaster, "predict_proba"):
        raise TypeError("forecaster must be a GrokForecaster or a path, got "
                        f"{type(forecaster).__name__}")
    return forecaster


def fitted_window(forecaster: Any) -> int | None:
    """The window W a forecaster was fit on, where it records one (``metadata_``), else None."""
    window = getattr(getattr(forecaster, "metadata_", None), "window", None)
    return None if window is None else int(window)


def _table_record(X: Any) -> tuple[int, list[int] | None] | None:
    """The window W and logged steps a feature table records it was made at (``feature_table``'s
    ``attrs``): (W, steps), steps None where not recorded; None where W is not recorded."""
    table = getattr(X, "attrs", None)
    table = table if isinstance(table, dict) else {}
    made, steps = table.get("window"), table.get("window_steps")
    # feature_table's record is an int; a "window" attrs of the user's own or another
    # library's (a name, a pair) is not a W, and such a table was scored before W was recorded.
    if not isinstance(made, numbers.Integral) or isinstance(made, bool):
        return None
    if (not isinstance(steps, list)
            or not all(isinstance(t, numbers.Integral) and not isinstance(t, bool) for t in steps)):
        return int(made), None
    return int(made), [int(t) for t in steps]


def _check_saved_window(record: tuple[int, list[int] | None], doc: dict[str, Any]) -> None:
    """Refuse to save, as a forecaster's ``window`` and ``window_steps``, others than those of the
    feature table it was fit on (``record``, see :func:`_table_record`): the file would claim
    features it was not fit on, and the loaded forecaster would score another window's tables
    with this one's coefficients. What passes is what the loaded forecaster would accept as its
    own table (:func:`_check_table_window`)."""
    made, steps = record
    window, saved_steps = doc["window"], doc.get("window_steps")
    last = max(saved_steps) if saved_steps is not None else window - 1
    if not last < made <= window:
        raise ValueError(f"window={window} is not allowed: this forecaster was fit on a feature "
                         f"table of window={made} (feature_table(log, {made})); save it with "
                         f"window={made}, or leave window out to use it")
    if saved_steps is not None and steps is not None and steps != saved_steps:
        from grokcast.features import show_steps

        raise ValueError(f"window_steps={show_steps(saved_steps)} is not allowed: this "
                         f"forecaster was fit on a feature table of steps {show_steps(steps)}; "
                         "save it with those")


def _check_table_window(X: Any, meta: ForecasterMetadata | None) -> None:
    """Refuse a feature table made at a window where the forecaster's features read other
    steps: they have the same names at every W, so nothing else tells them apart. A table of
    window W' reads the logged steps below W'; it is the forecaster's own where W' is at most
    W and above every step its features read (W' = W, or, where W falls between logged steps,
    one past the last logged step below it, as the stop rule computes them). Checked where
    both are known: ``feature_table`` records W' in ``attrs``, a loaded forecaster its file's.
    A log of another schedule reads other steps at the same W', so ``feature_table`` also
    records the steps it read (``attrs["window_steps"]``), which must then be the ones the
    file records (its ``window_steps``, where it has them).
    """
    record = _table_record(X)
    if meta is None or record is None:
        return
    made, steps = record
    last = meta.last_read_step()
    if not last < made <= meta.window:
        raise ValueError(f"a feature table of window={made} is not allowed: the forecaster was "
                         f"fit on window={meta.window} (its features read steps up to {last}); "
                         f"make the table with feature_table(log, {meta.window})")
    # The same W on a log of another schedule (every step, where the forecaster's runs logged
    # every 100 past 300) reads other steps, and its slopes, spreads and end values differ.
    if meta.window_steps is None or steps is None:
        return
    if steps != list(meta.window_steps):
        from grokcast.features import show_steps

        raise ValueError(f"a feature table of steps {show_steps(steps)} is not allowed: the "
                         f"forecaster's features read steps {show_steps(meta.window_steps)}; cut "
                         "the log to them first: grokcast.tool.window_features(forecaster, log, "
                         f"{meta.window}) does, as grokcast forecast does")


def check_window(window: Any, forecaster: Any, *, minimum: int) -> int:
    """``window`` as an int: at least ``minimum``, and the forecaster's own where it records one."""
    window = check_int("window", window, minimum)
    fitted = fitted_window(forecaster)
    if fitted is not None and window != fitted:
        raise ValueError(f"window={window} is not allowed: the forecaster was fit on "
                         f"window={fitted}; leave window out to use it")
    return window


_FILE_KEYS = (
    "grokcast_version", "feature_names", "classes", "scaler_mean", "scaler_scale", "coef",
    "intercept", "C", "Cs", "cv", "tol", "max_iter", "window", "threshold", "sweep_hash",
    "n_train_runs",
)
# Keys a file may lack: older grokcast versions did not write them, and a forecaster fit
# outside a sweep has none of them.
_OPTIONAL_KEYS = ("window_steps", "task", "train_window_digests", "label_steps", "train_heldout")


def _default_known_features() -> Sequence[str]:
    """The feature registry (imported late: only saving and loading need it)."""
    from grokcast.features import FEATURE_NAMES

    return FEATURE_NAMES


def _check_feature_names(names: Sequence[str], known: Sequence[str] | None,
                         error: type[Exception], *, in_file: bool = False) -> None:
    if len(set(names)) != len(names):
        dupes = sorted({s for s in names if list(names).count(s) > 1})
        raise error(f"feature names repeat: {dupes!r}")
    registry = known is None
    if known is None:
        known = _default_known_features()
    unknown = [s for s in names if s not in set(known)]
    if unknown and in_file and registry:
        # A file grokcast wrote names the features of the registry it was fit with: a name
        # this registry lacks is a feature added there, not a typo to correct (a close name,
        # slope_grad_norm for slope_log_grad_norm, is another quantity).
        raise error(f"unknown feature name(s) {unknown!r}: not among the {len(known)} features "
                    "of this grokcast's registry (grokcast.features.FEATURES); the forecaster "
                    "was fit by a grokcast whose registry has them: load it with that one, or "
                    "add them to this one's (docs/features.md, 'Adding a feature')")
    if unknown:
        close = difflib.get_close_matches(unknown[0], known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise error(f"unknown feature name(s) {unknown!r}{hint}: not among the {len(known)} "
                    "known features")


def _check_metadata(meta: dict[str, Any], error: type[Exception]) -> None:
    check_int("window", meta["window"], 1, error=error)
    check_number("threshold", meta["threshold"], 0, 1, closed="hi", error=error)
    if not (isinstance(meta["sweep_hash"], str) and meta["sweep_hash"]):
        raise error(f"sweep_hash={meta['sweep_hash']!r} is not allowed: expected a non-empty string")
    check_int("n_train_runs", meta["n_train_runs"], 2, error=error)


def _heldout_pairs(heldout: Any, n_runs: int) -> tuple[tuple[float, int], ...]:
    """``save``'s (probabilities, labels) as the file's sorted (P, label) pairs, validated."""
    try:
        proba, labels = heldout
        # Labels 0 and 1 as ints (numpy's too); anything else is kept, for the check to refuse.
        pairs = sorted(zip([float(p) for p in proba], [int(y) if y in (0, 1) else y for y in labels],
                           strict=True))
    except (TypeError, ValueError):
        got = f"{heldout!r:.100}"
        # Counts describe a pair of sequences; of a text ("0.1,0.2") they would count characters.
        if (isinstance(heldout, (tuple, list)) and len(heldout) == 2
                and all(hasattr(x, "__len__") and not isinstance(x, (str, bytes)) for x in heldout)):
            got = f"({len(heldout[0])} probabilities, {len(heldout[1])} labels)"
        raise ValueError(f"train_heldout={got} is not allowed: expected (probabilities, labels) "
                         "of equal length, numbers and 0/1") from None
    return _check_heldout_pairs([list(p) for p in pairs], n_runs, ValueError)


def _check_heldout_pairs(pairs: Any, n_runs: int, error: type[Exception],
                         ) -> tuple[tuple[float, int], ...]:
    """The file's ``train_heldout``, refused with what is wrong in it."""
    def is_pair(q: Any) -> bool:  # [P in [0, 1], label 0 or 1]
        return (isinstance(q, list) and len(q) == 2 and isinstance(q[0], (int, float))
                and not isinstance(q[0], bool) and 0 <= q[0] <= 1
                and q[1] in (0, 1) and not isinstance(q[1], (bool, float)))

    def fail(what: str) -> Exception:
        return error(f"train_heldout is not allowed: {what}; expected n_train_runs={n_runs} "
                     "[P, label] pairs sorted, P in [0, 1], label 0 or 1, both labels present")

    if not isinstance(pairs, list):
        raise fail(f"it is {pairs!r:.60}, not a list")
    if len(pairs) != n_runs:
        raise fail(f"it holds {len(pairs)} pairs")
    bad = next((k for k, q in enumerate(pairs) if not is_pair(q)), None)
    if bad is not None:
        raise fail(f"pair {bad} is {pairs[bad]!r:.60}")
    if pairs != sorted(pairs):
        raise fail("its pairs are not sorted")
    if {q[1] for q in pairs} != {0, 1}:
        raise fail(f"every label is {pairs[0][1]}")
    return tuple((float(p), int(y)) for p, y in pairs)


def _check_digests(digests: Any, error: type[Exception]) -> tuple[str, ...]:
    pattern = re.compile(f"[0-9a-f]{{{WINDOW_DIGEST_HEX}}}")
    ok = isinstance(digests, list) and bool(digests) and all(
        isinstance(d, str) and pattern.fullmatch(d) for d in digests)
    if not ok or digests != sorted(set(digests)):
        shown = digests if not isinstance(digests, list) or len(digests) <= 3 else f"{digests[:3]}..."
        raise error(f"train_window_digests={shown!r} is not allowed: expected a sorted list of "
                    f"distinct strings of {WINDOW_DIGEST_HEX} lowercase hex digits")
    return tuple(digests)


def _valid_window_steps(steps: Any, window: int) -> bool:
    ok = (isinstance(steps, list) and len(steps) >= 2
          and all(isinstance(t, (int, np.integer)) and not isinstance(t, bool) for t in steps))
    return ok and steps[0] == 0 and steps[-1] < window and all(a < b for a, b in zip(steps, steps[1:]))


def _check_window_steps(steps: Any, window: int, error: type[Exception]) -> tuple[int, ...]:
    if not _valid_window_steps(steps, window):
        shown = steps if not isinstance(steps, list) or len(steps) <= 6 else f"{steps[:6]}..."
        raise error(f"window_steps={shown!r} is not allowed: expected at least two increasing "
                    f"integer steps from 0, below window={window}")
    return tuple(int(t) for t in steps)


def _float(doc: dict[str, Any], key: str) -> float:
    v = doc[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ForecasterFileError(f"{key!r} must be a finite number, got {v!r}")
    return float(v)


def _float_list(doc: dict[str, Any], key: str, length: int | None) -> np.ndarray:
    v = doc[key]
    if not isinstance(v, list) or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        raise ForecasterFileError(f"{key!r} must be a list of numbers")
    if length is not None and len(v) != length:
        raise ForecasterFileError(
            f"{key!r} has {len(v)} entries but there are {length} feature names")
    if not v:
        raise ForecasterFileError(f"{key!r} must not be empty")
    out = np.array(v, dtype=np.float64)
    if not np.isfinite(out).all():  # json reads 1e400 as inf
        raise ForecasterFileError(f"{key!r} holds a non-finite number at index "
                                  f"{int(np.flatnonzero(~np.isfinite(out))[0])}")
    return out
