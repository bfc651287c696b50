"""DeepNetClassifier and DeepNetRegressor: the NumPy network behind scikit-learn
estimators, sharing one training loop (``_BaseDeepNet``)."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.callback import CallbackSupportMixin, with_callbacks
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from optuna_dl import _validation as rules
from optuna_dl._compat import sklearn_callbacks
from optuna_dl._persistence import ModelState, load_model, save_model
from optuna_dl._validation import check_sample_weight
from optuna_dl.callbacks import EpochRecord
from optuna_dl.nn import kernels
from optuna_dl.nn.activations import ACTIVATIONS
from optuna_dl.nn.losses import (
    REGRESSION_LOSSES,
    log_softmax,
    softmax_cross_entropy,
    weighted_softmax_cross_entropy,
)
from optuna_dl.nn.network import Network
from optuna_dl.nn.optimizers import OPTIMIZERS, Optimizer, make_optimizer
from optuna_dl.nn.schedules import SCHEDULES

DTYPES = {"float32": np.float32, "float64": np.float64}


class DivergenceWarning(UserWarning):
    """Training produced a non-finite loss or weight and was stopped."""


class _BaseDeepNet(CallbackSupportMixin, BaseEstimator):
    """The training loop shared by :class:`DeepNetClassifier` and
    :class:`DeepNetRegressor`: parameters, mini-batch epochs with sample weights,
    early stopping, divergence handling and model files.

    A subclass supplies the targets (``_validate_training_data``,
    ``_initialize_targets``, ``_encode``, ``_n_outputs``), the loss (``_batch_loss``),
    the early-stopping score (``_holdout_score``) and what a model file stores about
    the targets (``_target_state``, ``_set_target_state``).
    """

    #: The rule each constructor parameter must satisfy, checked by ``fit`` (and by
    #: anything that sets parameters from outside: study files, ``babysit --set``, model
    #: files). Shaped like scikit-learn's ``_parameter_constraints``, with the rules of
    #: ``optuna_dl._validation`` as values.
    _parameter_constraints: ClassVar[dict[str, Any]] = {
        "n_layers": rules.Interval("int", 0, None),
        "n_units": rules.Interval("int", 1, None),
        "activation": rules.OneOf.keys_of(ACTIVATIONS),
        "batch_norm": rules.Boolean(),
        "optimizer": rules.OneOf.keys_of(OPTIMIZERS),
        "learning_rate": rules.Interval("float", 0, None, "neither"),
        "beta": rules.Interval("float", 0, 1, "left"),
        "beta1": rules.Interval("float", 0, 1, "left"),
        "beta2": rules.Interval("float", 0, 1, "left"),
        "epsilon": rules.Interval("float", 0, None, "neither"),
        "learning_rate_decay": rules.Interval("float", 0, None, "left"),
        "decay_schedule": rules.OneOf.keys_of(SCHEDULES),
        "batch_size": rules.Interval("int", 1, None),
        "max_epochs": rules.Interval("int", 1, None),
        "l2": rules.Interval("float", 0, None, "left"),
        "dropout": rules.Interval("float", 0, 1, "left"),
        "early_stopping": rules.Boolean(),
        "validation_fraction": rules.Interval("float", 0, 1, "neither"),
        "n_iter_no_change": rules.Interval("int", 1, None),
        "tol": rules.Interval("float", 0, None, "left"),
        "dtype": rules.OneOf.keys_of(DTYPES),
        "random_state": rules.RandomState(),
        "warm_start": rules.Boolean(),
        "verbose": rules.Interval("int", 0, None),
    }

    def __init__(
        self,
        n_layers: int = 2,
        n_units: int = 128,
        activation: str = "relu",
        batch_norm: bool = True,
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
        beta: float = 0.9,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        learning_rate_decay: float = 0.0,
        decay_schedule: str = "inverse_time",
        batch_size: int = 128,
        max_epochs: int = 100,
        l2: float = 0.0,
        dropout: float = 0.0,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        dtype: str = "float32",
        random_state: Any = None,
        warm_start: bool = False,
        verbose: int = 0,
    ) -> None:
        self.n_layers = n_layers
        self.n_units = n_units
        self.activation = activation
        self.batch_norm = batch_norm
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.beta = beta
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.learning_rate_decay = learning_rate_decay
        self.decay_schedule = decay_schedule
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.l2 = l2
        self.dropout = dropout
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.dtype = dtype
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose

    # ------------------------------------------------------------------ fitting
    def _fit(
        self,
        X: Any,
        y: Any,
        *,
        incremental: bool,
        sample_weight: Any = None,
        classes: Any = None,
    ):
        rules.check_parameters(
            type(self).__name__, self.get_params(deep=False), self._parameter_constraints
        )
        dtype = DTYPES[self.dtype]
        fitted = hasattr(self, "network_")
        reset = not fitted or not (incremental or self.warm_start)
        X, y = self._validate_training_data(X, y, reset=reset, dtype=dtype, classes=classes)
        weights = check_sample_weight(sample_weight, X.shape[0])
        if reset:
            self._initialize(X, y, classes, weights)
        else:
            self._check_continuation(classes)
            if dtype != self.network_.dtype:
                raise ValueError(
                    f"dtype={self.dtype!r} differs from the fitted network's "
                    f"{self.network_.dtype.name}; refit from scratch to change it."
                )
        targets = self._encode(y)
        weights = self._training_weights(targets, weights)

        X_val = y_val = w_val = None
        if self.early_stopping and not incremental:
            X, X_val, targets, y_val, weights, w_val = self._validation_split(X, targets, weights)
            if self.validation_scores_ is None:  # warm start after a fit without it
                self.validation_scores_ = []

        context = self._init_callback_context(max_subtasks=1 if incremental else self.max_epochs)
        context.call_on_fit_task_begin(estimator=self, X=X, y=y)
        n_epochs = 1 if incremental else self.max_epochs
        self._train(
            X,
            targets,
            _Holdout(X_val, y_val, w_val),
            n_epochs,
            context,
            check_outputs=not incremental,
            weights=weights,
        )
        context.call_on_fit_task_end(estimator=self, X=X, y=y)
        return self

    # What a subclass supplies: its targets, output layer, loss and held-out score.
    def _validate_training_data(
        self, X: Any, y: Any, *, reset: bool, dtype: Any, classes: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """``X`` and ``y`` checked and converted (``validate_data``)."""
        raise NotImplementedError

    def _initialize_targets(self, y: np.ndarray, classes: Any, weights: np.ndarray | None) -> None:
        """Set the fitted attributes that describe the targets (classes, scaling)."""
        raise NotImplementedError

    def _check_continuation(self, classes: Any) -> None:
        """Refuse a warm-started or incremental call the fitted targets cannot take."""

    def _n_outputs(self) -> int:
        """Width of the output layer."""
        raise NotImplementedError

    def _encode(self, y: np.ndarray) -> np.ndarray:
        """The training targets the loss compares the outputs with."""
        raise NotImplementedError

    def _training_weights(
        self, targets: np.ndarray, weights: np.ndarray | None
    ) -> np.ndarray | None:
        """The row weights training uses (``sample_weight`` unless overridden)."""
        return weights

    def _stratify_labels(self, targets: np.ndarray, n_val: int) -> np.ndarray | None:
        """Labels to stratify the early-stopping split by, or None."""
        return None

    def _batch_loss(
        self, outputs: np.ndarray, y: np.ndarray, weights: np.ndarray | None
    ) -> tuple[float, np.ndarray]:
        """The loss of one mini-batch (rows weighted by ``weights``, if given) and its
        gradient at the output layer."""
        raise NotImplementedError

    def _holdout_score(self, holdout: _Holdout) -> float:
        """The early-stopping score of the held-out rows (higher is better)."""
        raise NotImplementedError

    def _target_state(self) -> dict[str, Any]:
        """The target description :meth:`save` stores (``ModelState`` fields)."""
        raise NotImplementedError

    def _set_target_state(self, state: ModelState) -> None:
        """Restore what :meth:`_target_state` stored."""
        raise NotImplementedError

    def _initialize(
        self, X: np.ndarray, y: np.ndarray, classes: Any, weights: np.ndarray | None
    ) -> None:
        self._initialize_targets(y, classes, weights)
        self._rng = _make_generator(self.random_state)
        self.network_ = self._new_network(X.shape[1], self._n_outputs())
        self.optimizer_ = self._make_optimizer()
        self.n_iter_ = 0
        self.loss_curve_: list[float] = []
        self.validation_scores_: list[float] | None = [] if self.early_stopping else None
        self.best_validation_score_: float | None = None
        self.history_: list[EpochRecord] = []
        self.diverged_ = False

    def _new_network(self, n_features: int, n_outputs: int) -> Network:
        return Network(
            n_features,
            n_outputs,
            [self.n_units] * self.n_layers,
            activation=self.activation,
            batch_norm=self.batch_norm,
            dropout=self.dropout,
            rng=self._rng,
            dtype=DTYPES[self.dtype],
        )

    def _make_optimizer(self) -> Optimizer:
        return make_optimizer(
            self.optimizer,
            beta=self.beta,
            beta1=self.beta1,
            beta2=self.beta2,
            epsilon=self.epsilon,
        )

    def reset_optimizer(self, *, keep_state: bool = True) -> bool:
        """Rebuild ``optimizer_`` from the current optimizer hyperparameters.

        Call it after ``set_params`` changed ``optimizer``, ``beta``, ``beta1``,
        ``beta2`` or ``epsilon`` on a fitted model: the optimizer is built when the
        weights are initialized, so without this call a warm-started ``fit`` or a
        ``partial_fit`` would keep the old coefficients. The other parameters
        (learning rate, its decay, batch size, ``l2``) are read every epoch and need
        no reset.

        Parameters
        ----------
        keep_state : bool, default=True
            Carry the step count ``t`` and the per-parameter state (momentum's
            velocity, RMSprop's square average, Adam's first and second moments) over
            to the new optimizer when it uses the same update rule as the old one;
            the new coefficients apply from the next step on.

        Returns
        -------
        carried_over : bool
            Whether the old state was carried over. It is lost (the new optimizer
            starts from zero: ``t = 0``, no velocity, no moments) when
            ``keep_state`` is False or the update rule changed, e.g. from
            ``"momentum"`` to ``"adam"``.
        """
        check_is_fitted(self, "optimizer_")
        old, new = self.optimizer_, self._make_optimizer()
        carried_over = keep_state and type(new) is type(old)
        if carried_over:
            if old.state():
                new.load_state(old.t, old.state())
            else:
                new.t = old.t
        self.optimizer_ = new
        return carried_over

    def _validation_split(self, X: np.ndarray, y: np.ndarray, weights: np.ndarray | None):
        """Hold out ``validation_fraction`` of the rows (stratified when the subclass
        gives labels to stratify by); the weights, if any, follow their rows."""
        n_val = int(np.ceil(self.validation_fraction * X.shape[0]))
        stratify = self._stratify_labels(y, n_val)
        if X.shape[0] - n_val < 1 or n_val < 1:
            raise ValueError(
                f"early_stopping with validation_fraction={self.validation_fraction} "
                f"leaves no training or no validation samples out of {X.shape[0]}."
            )
        seed = int(self._rng.integers(2**31 - 1))
        train, val = train_test_split(
            np.arange(X.shape[0]), test_size=n_val, stratify=stratify, random_state=seed
        )
        if weights is None:
            return X[train], X[val], y[train], y[val], None, None
        for rows, part in ((train, "training"), (val, "validation")):
            if not weights[rows].any():
                raise ValueError(
                    f"sample_weight is zero for every {part} row of the early-stopping "
                    "split; give more rows a non-zero weight or change random_state."
                )
        return X[train], X[val], y[train], y[val], weights[train], weights[val]

    def _train(
        self,
        X: np.ndarray,
        y: np.ndarray,
        holdout: _Holdout,
        n_epochs: int,
        context: Any,
        check_outputs: bool = False,
        weights: np.ndarray | None = None,
    ) -> None:
        n = X.shape[0]
        batch_size = min(self.batch_size, n)
        batches = _batch_bounds(n, batch_size)
        threads = _blas_threads(self.network_, batch_size)
        # Overflow (or a division by zero) in a diverging epoch is detected and reported
        # as a DivergenceWarning.
        with (
            threadpool_limits(threads, user_api="blas"),
            np.errstate(over="ignore", invalid="ignore", divide="ignore"),
        ):
            self._run_epochs(X, y, holdout, n_epochs, context, batches, check_outputs, weights)

    def _run_epochs(
        self,
        X: np.ndarray,
        y: np.ndarray,
        holdout: _Holdout,
        n_epochs: int,
        context: Any,
        batches: list[tuple[int, int]],
        check_outputs: bool = False,
        weights: np.ndarray | None = None,
    ) -> None:
        """Train up to ``n_epochs`` epochs, stopping on divergence, on a callback's
        request or after ``n_iter_no_change`` epochs without improvement; then roll back
        to the best held-out epoch, and (``check_outputs``) make sure the model returned
        gives finite outputs on every row it was given."""
        batch_buffer = np.empty((max(b - a for a, b in batches), X.shape[1]), X.dtype)
        progress = _Progress()
        seen = [X] if holdout.X is None else [X, holdout.X]  # every row fit was given
        callbacks = [cb for cb in sklearn_callbacks(self) if hasattr(cb, "on_epoch_end")]
        snapshot: list[np.ndarray] = []
        learning_rate = float(self.learning_rate)
        for _ in range(n_epochs):
            started = time.perf_counter()
            learning_rate = self._learning_rate_for_epoch()
            subcontext = context.subcontext(task_name="epoch")
            subcontext.call_on_fit_task_begin(estimator=self)
            snapshot = self._snapshot()
            if progress.call_start is None:
                progress.call_start = (self.n_iter_, snapshot)
            epoch_loss = self._train_one_epoch(X, y, batches, batch_buffer, learning_rate, weights)
            if not self._finite_epoch(epoch_loss):
                states = [(self.n_iter_, snapshot), progress.call_start]
                self._stop_diverged(seen, states, learning_rate)
                progress.diverged = True
                break
            record = self._record_epoch(epoch_loss, holdout, learning_rate, started)
            stop = self._end_epoch(subcontext, callbacks, record)
            if n_epochs == 1:
                break
            self._update_no_improvement(progress, epoch_loss, record.validation_score)
            if stop or progress.stalled >= self.n_iter_no_change:
                break
        if self._restore_best(progress, seen):
            return
        # Finite weights can still be so large that inference overflows; the next epoch
        # notices (its loss is not finite), but after the last one fit checks the model it
        # returns, so that it never outputs NaN on the data it was fit on.
        if check_outputs and not progress.diverged and progress.call_start is not None:
            if not self._finite_outputs(seen):
                states = [(self.n_iter_ - 1, snapshot), progress.call_start]
                self._stop_diverged(seen, states, learning_rate, epoch=self.n_iter_)

    def _learning_rate_for_epoch(self) -> float:
        """The scheduled rate of the next epoch (``n_iter_`` epochs are done)."""
        schedule = SCHEDULES[self.decay_schedule]
        return float(schedule(self.learning_rate, self.learning_rate_decay, self.n_iter_))

    def _snapshot(self) -> list[np.ndarray]:
        """A copy of the network's state arrays (to roll back to)."""
        return [a.copy() for a in self.network_.state_arrays()]

    def _train_one_epoch(
        self,
        X: np.ndarray,
        y: np.ndarray,
        batches: list[tuple[int, int]],
        batch_buffer: np.ndarray,
        learning_rate: float,
        row_weights: np.ndarray | None = None,
    ) -> float:
        """One pass over shuffled mini-batches of ``(X, y)``; return the mean loss
        (weighted by ``row_weights``, if given).

        The hot path: per batch, rows are gathered into the preallocated
        ``batch_buffer`` and everything else works in place.
        """
        network, optimizer = self.network_, self.optimizer_
        params, grads = [network.flat_params], [network.flat_grads]
        weights, weight_grads = network.weights, network.weight_grads
        l2 = float(self.l2)
        n = X.shape[0]
        order = self._rng.permutation(n)
        total = 0.0
        total_weight = n if row_weights is None else float(row_weights.sum())
        for start, stop in batches:
            batch = order[start:stop]
            m = batch.size
            X_batch = kernels.take_rows(X, batch, batch_buffer[:m])
            logits = network.forward(X_batch, training=True)
            w_batch = None if row_weights is None else row_weights[batch]
            loss, dlogits = self._batch_loss(logits, y[batch], w_batch)
            network.backward(dlogits)
            if l2 > 0:
                for W, dW in zip(weights, weight_grads):
                    dW += (l2 / m) * W
                    loss += l2 / (2 * m) * float(np.vdot(W, W))
            optimizer.update(params, grads, learning_rate)
            total += loss * (m if w_batch is None else float(w_batch.sum()))
        return total / total_weight

    def _finite_epoch(self, epoch_loss: float) -> bool:
        """Whether the epoch's loss and every weight after it are finite."""
        return bool(np.isfinite(epoch_loss) and np.isfinite(self.network_.flat_params).all())

    def _record_epoch(
        self,
        epoch_loss: float,
        holdout: _Holdout,
        learning_rate: float,
        started: float,
    ) -> EpochRecord:
        """Count the epoch, score the held-out rows (if any), append to ``loss_curve_``,
        ``validation_scores_`` and ``history_``, and print the line when verbose."""
        self.n_iter_ += 1
        self.loss_curve_.append(epoch_loss)
        score = None
        if holdout.X is not None:
            score = self._holdout_score(holdout)
            self.validation_scores_.append(score)
        record = EpochRecord(
            self.n_iter_, epoch_loss, score, learning_rate, time.perf_counter() - started
        )
        self.history_.append(record)
        if self.verbose:
            print(_format_record(record, self.max_epochs))
        return record

    def _end_epoch(self, subcontext: Any, callbacks: list[Any], record: EpochRecord) -> bool:
        """Tell scikit-learn's callbacks, then ours, that the epoch ended; return
        whether any of them asks to stop (all are called either way)."""
        stop = subcontext.call_on_fit_task_end(estimator=self)
        for callback in callbacks:
            stop = bool(callback.on_epoch_end(self, record)) or stop
        return bool(stop)

    def _update_no_improvement(
        self, progress: _Progress, epoch_loss: float, score: float | None
    ) -> None:
        """Count epochs without an improvement of ``tol``: of the held-out score with
        early stopping (keeping a copy of the best weights), else of the training loss."""
        if score is not None:
            if score > progress.best_score + self.tol:
                progress.best_score, progress.stalled = score, 0
                progress.best_state = self._snapshot()
                progress.best_epoch = self.n_iter_
            else:
                progress.stalled += 1
        elif epoch_loss < progress.best_loss - self.tol:
            progress.best_loss, progress.stalled = epoch_loss, 0
        else:
            progress.stalled += 1

    def _restore_best(self, progress: _Progress, seen: list[np.ndarray]) -> bool:
        """Roll back to the best held-out epoch, unless a divergence already rolled back
        past it or its weights overflow on ``seen``; return whether it did."""
        if progress.best_state is None or progress.best_epoch > self.n_iter_:
            return False
        last = self._snapshot()
        self.network_.set_state_arrays(progress.best_state)
        if self._finite_outputs(seen):
            self.best_validation_score_ = progress.best_score
            return True
        self.network_.set_state_arrays(last)
        return False

    def _finite_outputs(self, arrays: list[np.ndarray]) -> bool:
        """Whether inference on every row of ``arrays`` gives finite logits. A bound
        computed from the weights settles it without a forward pass unless the weights
        have grown near overflow."""
        limit = 1e-8 * float(np.finfo(self.network_.dtype).max)
        for a in arrays:
            column_bound = np.maximum(a.max(axis=0), -a.min(axis=0))
            if self.network_.output_bound(column_bound) < limit:
                continue
            with np.errstate(all="ignore"):
                if not np.isfinite(self.network_.infer(a)).all():
                    return False
        return True

    def _stop_diverged(
        self,
        seen: list[np.ndarray],
        states: list[tuple[int, list[np.ndarray]]],
        learning_rate: float,
        epoch: int | None = None,
    ) -> None:
        """Restore the newest of ``states`` (``(n_iter_, arrays)`` pairs, newest first)
        whose logits on every array of ``seen`` (the training rows, and the held-out ones
        with early stopping) are finite, else re-initialize the weights, and roll the
        per-epoch records back to match.

        The weights from before the diverging epoch are finite but may already be so
        large that inference overflows, hence the older fallbacks.
        """
        epoch = self.n_iter_ + 1 if epoch is None else epoch
        for n_iter, state in states:
            self.network_.set_state_arrays(state)
            if self._finite_outputs(seen):
                restored = f"the weights from before epoch {n_iter + 1} were restored"
                break
        else:
            fresh = self._new_network(seen[0].shape[1], self._n_outputs())
            self.network_.set_state_arrays(fresh.state_arrays())
            n_iter, restored = 0, "the weights were re-initialized"
        dropped = self.n_iter_ - n_iter
        if dropped:
            for records in (self.loss_curve_, self.history_, self.validation_scores_):
                if records is not None:
                    del records[max(len(records) - dropped, 0) :]
            self.n_iter_ = n_iter
        self.reset_optimizer(keep_state=False)
        self.diverged_ = True
        warnings.warn(
            f"training diverged in epoch {epoch} at learning_rate="
            f"{learning_rate:.3g}: the loss, a weight or the output became non-finite. Training "
            f"stopped and {restored}; try a smaller learning_rate.",
            DivergenceWarning,
            stacklevel=6,  # _stop_diverged, _train, _fit, fit, callback wrapper, caller
        )

    # --------------------------------------------------------------- inference
    def _logits(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "network_")
        X = validate_data(self, X, reset=False, dtype=self.network_.dtype, order="C")
        return self.network_.infer(X)

    def _finite_or_raise(self, outputs: np.ndarray) -> np.ndarray:
        """``outputs``, unless the network's output overflowed for some sample."""
        overflowed = ~np.isfinite(outputs).all(axis=1)
        if overflowed.any():
            rows = np.flatnonzero(overflowed)
            raise ValueError(
                f"the network's output is not finite for {rows.size} of {outputs.shape[0]} "
                f"samples (first: row {rows[0]}): their features are too large in magnitude "
                f"for this {self.network_.dtype.name} model (or it diverged in training). "
                "Scale the features, e.g. with StandardScaler."
            )
        return outputs

    # ------------------------------------------------------------- persistence
    def save(self, path: Any) -> None:
        """Write the fitted model to an ``.npz`` file (arrays plus a JSON header).

        Parameters
        ----------
        path : str or path-like
        """
        save_model(self, path)

    @classmethod
    def load(cls, path: Any) -> Any:
        """Read a model written by :meth:`save`; never unpickles, never runs code.

        Parameters
        ----------
        path : str or path-like

        Returns
        -------
        model : an instance of the class ``load`` is called on
        """
        return load_model(cls, path)

    def _to_state(self) -> ModelState:
        """What :meth:`save` writes: the parameters and the fitted state (not copies)."""
        return ModelState(
            params=self.get_params(deep=False),
            n_features_in=self.n_features_in_,
            feature_names_in=getattr(self, "feature_names_in_", None),
            network=self.network_.state_arrays(),
            optimizer_t=self.optimizer_.t,
            optimizer_state=self.optimizer_.state(),
            rng=self._rng,
            n_iter=self.n_iter_,
            loss_curve=self.loss_curve_,
            validation_scores=self.validation_scores_,
            best_validation_score=self.best_validation_score_,
            diverged=self.diverged_,
            **self._target_state(),
        )

    @classmethod
    def _from_state(cls, state: ModelState) -> Any:
        """The model :meth:`_to_state` described; ``state.params`` must already be
        checked against ``_parameter_constraints`` and its sizes against its arrays.

        Raises ValueError when an array does not fit the network the parameters build.
        The per-epoch ``history_`` is not stored and starts empty.
        """
        model = cls(**state.params)
        model._set_target_state(state)
        model.n_features_in_ = state.n_features_in
        if state.feature_names_in is not None:
            model.feature_names_in_ = state.feature_names_in
        rng_state = state.rng.bit_generator.state
        model._rng = state.rng
        model.network_ = model._new_network(state.n_features_in, model._n_outputs())
        model.network_.set_state_arrays(state.network)
        model._rng.bit_generator.state = rng_state  # building the network drew from it
        model.optimizer_ = model._make_optimizer()
        if state.optimizer_state:
            expected = [model.network_.flat_params]
            for slot, arrays in state.optimizer_state.items():
                for array, param in zip(arrays, expected):
                    if array.shape != param.shape or array.dtype != param.dtype:
                        raise ValueError(
                            f"optimizer state {slot!r} has shape {array.shape} and dtype "
                            f"{array.dtype}; the network needs {param.shape} and {param.dtype}"
                        )
            model.optimizer_.load_state(state.optimizer_t, state.optimizer_state)
        else:
            model.optimizer_.t = int(state.optimizer_t)
        model.n_iter_ = int(state.n_iter)
        model.loss_curve_ = list(state.loss_curve)
        model.validation_scores_ = state.validation_scores
        model.best_validation_score_ = state.best_validation_score
        model.history_ = []
        model.diverged_ = bool(state.diverged)
        return model


class DeepNetClassifier(ClassifierMixin, _BaseDeepNet):
    """Deep fully connected classifier with batch normalization and a softmax output.

    Each hidden layer is ``Dense -> BatchNorm -> activation [-> Dropout]``; the
    output layer is Dense followed by a softmax, trained on the cross-entropy by
    mini-batch gradient descent (plain, momentum, RMSprop or Adam) with an optional
    learning-rate decay. Pure NumPy, float32 by default.

    Parameters
    ----------
    n_layers : int, default=2
        Number of hidden layers (0 gives multinomial logistic regression).
    n_units : int, default=128
        Units in each hidden layer.
    activation : {"relu", "leaky_relu", "tanh", "sigmoid"}, default="relu"
        Hidden-layer activation.
    batch_norm : bool, default=True
        Normalize every hidden pre-activation with mini-batch statistics in training
        and moving averages at inference. The Dense bias is then dropped.
    optimizer : {"sgd", "momentum", "rmsprop", "adam"}, default="adam"
        Update rule.
    learning_rate : float, default=1e-3
        Initial learning rate ``alpha0``.
    beta : float, default=0.9
        Momentum coefficient (``optimizer="momentum"``); ``1 / (1 - beta)`` is the
        number of gradients averaged.
    beta1 : float, default=0.9
        Adam's first-moment decay.
    beta2 : float, default=0.999
        Second-moment decay of Adam and RMSprop.
    epsilon : float, default=1e-8
        Denominator guard of Adam and RMSprop.
    learning_rate_decay : float, default=0.0
        Decay rate of ``decay_schedule``; 0 keeps the rate constant.
    decay_schedule : {"inverse_time", "exponential", "step"}, default="inverse_time"
        ``lr0 / (1 + decay * epoch)``, ``lr0 * exp(-decay * epoch)`` or
        ``lr0 * 0.5 ** floor(decay * epoch)``, with ``epoch`` counted from 0.
    batch_size : int, default=128
        Mini-batch size (clipped to the number of samples).
    max_epochs : int, default=100
        Epochs of ``fit``.
    l2 : float, default=0.0
        L2 penalty ``l2 / (2 m) * sum ||W||^2`` on the Dense weights.
    dropout : float, default=0.0
        Inverted-dropout rate after each hidden activation.
    early_stopping : bool, default=False
        Hold out a stratified ``validation_fraction``, stop when its accuracy has not
        improved by ``tol`` for ``n_iter_no_change`` epochs, and restore the best
        weights. Without it, training stops when the training loss stalls likewise.
    validation_fraction : float, default=0.1
        Share of the training data held out for early stopping.
    n_iter_no_change : int, default=10
        Patience in epochs.
    tol : float, default=1e-4
        Minimum improvement.
    class_weight : dict, "balanced" or None, default=None
        Weight of each class in the loss, multiplying ``sample_weight``: a dict from
        label to weight (absent labels weigh 1), or ``"balanced"`` for
        ``n_samples / (n_classes * count(label))`` over the labels of the ``y`` given
        to ``fit`` (as ``sklearn.utils.class_weight.compute_sample_weight``).
    dtype : {"float32", "float64"}, default="float32"
        Precision of parameters and computation.
    random_state : int, Generator, RandomState or None, default=None
        Seeds initialization, shuffling, dropout and the validation split; an int gives
        bit-identical models.
    warm_start : bool, default=False
        Let ``fit`` continue from the current weights and optimizer state.
    verbose : int, default=0
        Print one line per epoch when positive.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when ``X`` had string column names.
    n_iter_ : int
        Epochs trained since the weights were initialized.
    loss_curve_ : list of float
        Training loss per epoch.
    validation_scores_ : list of float or None
        Held-out accuracy per epoch with early stopping, else None.
    best_validation_score_ : float or None
    history_ : list of EpochRecord
        Everything reported after each epoch.
    diverged_ : bool
        Whether training stopped on a non-finite loss, weight or output.
    network_ : optuna_dl.nn.Network
    optimizer_ : optuna_dl.nn.Optimizer

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from optuna_dl import DeepNetClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), DeepNetClassifier(random_state=0))
    >>> model.fit(X, y).score(X, y) > 0.95
    True
    """

    _parameter_constraints: ClassVar[dict[str, Any]] = {
        **_BaseDeepNet._parameter_constraints,
        "class_weight": rules.ClassWeight(),
    }

    def __init__(
        self,
        n_layers: int = 2,
        n_units: int = 128,
        activation: str = "relu",
        batch_norm: bool = True,
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
        beta: float = 0.9,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        learning_rate_decay: float = 0.0,
        decay_schedule: str = "inverse_time",
        batch_size: int = 128,
        max_epochs: int = 100,
        l2: float = 0.0,
        dropout: float = 0.0,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        class_weight: dict[Any, float] | str | None = None,
        dtype: str = "float32",
        random_state: Any = None,
        warm_start: bool = False,
        verbose: int = 0,
    ) -> None:
        super().__init__(
            n_layers=n_layers,
            n_units=n_units,
            activation=activation,
            batch_norm=batch_norm,
            optimizer=optimizer,
            learning_rate=learning_rate,
            beta=beta,
            beta1=beta1,
            beta2=beta2,
            epsilon=epsilon,
            learning_rate_decay=learning_rate_decay,
            decay_schedule=decay_schedule,
            batch_size=batch_size,
            max_epochs=max_epochs,
            l2=l2,
            dropout=dropout,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            tol=tol,
            dtype=dtype,
            random_state=random_state,
            warm_start=warm_start,
            verbose=verbose,
        )
        self.class_weight = class_weight

    # ------------------------------------------------------------------ fitting
    @with_callbacks
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> DeepNetClassifier:
        """Train for up to ``max_epochs`` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weight of each row, not all zero. The loss of a mini-batch
            is the weighted mean ``sum(w_i * loss_i) / sum(w_i)``, so a row of integer
            weight ``k`` counts as ``k`` copies of it within its batch (batch-norm
            statistics stay unweighted). With early stopping the held-out rows keep
            their weights and the validation accuracy is weighted.

        Returns
        -------
        self : DeepNetClassifier
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    @with_callbacks
    def partial_fit(
        self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None
    ) -> DeepNetClassifier:
        """Train for exactly one epoch over ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        classes : array-like of shape (n_classes,), optional
            Every label that will ever be seen; required on the first call when
            ``y`` might not contain them all.
        sample_weight : array-like of shape (n_samples,), optional
            Row weights, as in :meth:`fit`.

        Returns
        -------
        self : DeepNetClassifier
        """
        return self._fit(X, y, incremental=True, sample_weight=sample_weight, classes=classes)

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy of :meth:`predict` on ``(X, y)``, weighted by ``sample_weight``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        sample_weight : array-like of shape (n_samples,), optional

        Returns
        -------
        score : float
        """
        return super().score(X, y, sample_weight=sample_weight)

    def _validate_training_data(
        self, X: Any, y: Any, *, reset: bool, dtype: Any, classes: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        _check_label_types(y, "y")
        if classes is not None:
            _check_label_types(classes, "classes")
        X, y = validate_data(self, X, y, reset=reset, dtype=dtype, order="C", ensure_min_samples=1)
        check_classification_targets(y)
        return X, y

    def _initialize_targets(self, y: np.ndarray, classes: Any, weights: np.ndarray | None) -> None:
        labels = np.unique(y) if classes is None else np.unique(np.asarray(classes))
        if classes is not None:
            unknown = np.setdiff1d(np.unique(y), labels)
            if unknown.size:
                raise ValueError(
                    f"y contains labels {list(unknown)!r} that are not in classes="
                    f"{list(labels)!r}."
                )
        if labels.size < 2:
            raise ValueError(
                "DeepNetClassifier needs samples of at least 2 classes; got 1 class "
                f"({labels[0]!r})."
            )
        self.classes_ = labels

    def _check_continuation(self, classes: Any) -> None:
        if classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(
                f"classes={list(np.unique(classes))!r} differs from the classes of the "
                f"first partial_fit call {list(self.classes_)!r}."
            )

    def _n_outputs(self) -> int:
        return int(self.classes_.size)

    def _encode(self, y: np.ndarray) -> np.ndarray:
        index = np.searchsorted(self.classes_, y)
        index = np.clip(index, 0, self.classes_.size - 1)
        unknown = self.classes_[index] != y
        if np.any(unknown):
            raise ValueError(
                f"y contains labels {list(np.unique(y[unknown]))!r} not seen when the "
                f"model was initialized (classes_={list(self.classes_)!r})."
            )
        return index.astype(np.intp)

    def _training_weights(
        self, y_index: np.ndarray, weights: np.ndarray | None
    ) -> np.ndarray | None:
        """``weights`` times the weight ``class_weight`` gives each row's class."""
        if self.class_weight is None:
            return weights
        if self.class_weight == "balanced":
            counts = np.bincount(y_index, minlength=self.classes_.size).astype(np.float64)
            present = np.count_nonzero(counts)
            per_class = np.divide(
                y_index.size, present * counts, out=np.ones_like(counts), where=counts > 0
            )
        else:
            unknown = [label for label in self.class_weight if label not in set(self.classes_)]
            if unknown:
                raise ValueError(
                    f"class_weight has labels {unknown!r} that are not classes of y "
                    f"(classes_={list(self.classes_)!r})."
                )
            per_class = np.array(
                [float(self.class_weight.get(label, 1.0)) for label in self.classes_]
            )
        row_weights = per_class[y_index]
        combined = row_weights if weights is None else weights * row_weights
        if not combined.any():
            raise ValueError(
                "sample_weight times class_weight is zero for every sample; at least one "
                "row needs a non-zero weight."
            )
        return combined

    def _stratify_labels(self, y: np.ndarray, n_val: int) -> np.ndarray | None:
        counts = np.bincount(y, minlength=self.classes_.size)
        n_classes = self.classes_.size
        if counts.min() >= 2 and n_val >= n_classes and y.shape[0] - n_val >= n_classes:
            return y
        return None

    def _batch_loss(
        self, logits: np.ndarray, y: np.ndarray, weights: np.ndarray | None
    ) -> tuple[float, np.ndarray]:
        """The loss of one mini-batch and its gradient at the output layer."""
        if weights is None:
            return softmax_cross_entropy(logits, y)
        return weighted_softmax_cross_entropy(logits, y, weights)

    def _target_state(self) -> dict[str, Any]:
        return {"classes": self.classes_}

    def _set_target_state(self, state: ModelState) -> None:
        self.classes_ = state.classes

    # --------------------------------------------------------------- inference
    def _predict_index(self, X: np.ndarray) -> np.ndarray:
        return np.argmax(self.network_.infer(X), axis=1)

    def _holdout_score(self, holdout: _Holdout) -> float:
        """Accuracy on the held-out rows, weighted by their sample weights."""
        correct = self._predict_index(holdout.X) == holdout.y
        return float(np.average(correct, weights=holdout.weights))

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes), float64
            Columns follow ``classes_``.

        Raises
        ------
        ValueError
            If the network's output overflows for some sample (features far larger
            than in training), rather than returning NaN.
        """
        logits = self._finite_or_raise(self._logits(X))
        return log_softmax(logits.astype(np.float64))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (softmax of the output layer, rows sum to 1).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes), float64
            Columns follow ``classes_``.

        Raises
        ------
        ValueError
            If the network's output overflows for some sample, rather than returning NaN.
        """
        return np.exp(self.predict_log_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        index = np.argmax(self._logits(X), axis=1)
        return self.classes_[index]


class DeepNetRegressor(RegressorMixin, _BaseDeepNet):
    """Deep fully connected regressor with batch normalization and a linear output.

    The network of :class:`DeepNetClassifier` with a linear output layer, trained on
    half the mean squared error (or the Huber loss) of the standardized targets:
    ``fit`` subtracts the (weighted) mean of each target column and divides by its
    standard deviation, stored as ``y_mean_`` and ``y_scale_``, and ``predict`` undoes
    it. ``y`` may have one column or several (multi-output). ``score`` is R².

    Parameters
    ----------
    n_layers : int, default=2
        Number of hidden layers (0 gives linear regression).
    n_units : int, default=128
        Units in each hidden layer.
    activation : {"relu", "leaky_relu", "tanh", "sigmoid"}, default="relu"
        Hidden-layer activation.
    batch_norm : bool, default=True
        Batch normalization of every hidden pre-activation.
    optimizer : {"sgd", "momentum", "rmsprop", "adam"}, default="adam"
        Update rule.
    learning_rate : float, default=1e-3
        Initial learning rate.
    beta : float, default=0.9
        Momentum coefficient.
    beta1 : float, default=0.9
        Adam's first-moment decay.
    beta2 : float, default=0.999
        Second-moment decay of Adam and RMSprop.
    epsilon : float, default=1e-8
        Denominator guard of Adam and RMSprop.
    learning_rate_decay : float, default=0.0
        Decay rate of ``decay_schedule``.
    decay_schedule : {"inverse_time", "exponential", "step"}, default="inverse_time"
        Learning-rate schedule, as in :class:`DeepNetClassifier`.
    batch_size : int, default=128
        Mini-batch size (clipped to the number of samples).
    max_epochs : int, default=100
        Epochs of ``fit``.
    l2 : float, default=0.0
        L2 penalty ``l2 / (2 m) * sum ||W||^2`` on the Dense weights.
    dropout : float, default=0.0
        Inverted-dropout rate after each hidden activation.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows (not stratified), stop when their
        (weighted) R² has not improved by ``tol`` for ``n_iter_no_change`` epochs, and
        restore the best weights. Without it, training stops when the training loss
        stalls likewise.
    validation_fraction : float, default=0.1
        Share of the training data held out for early stopping.
    n_iter_no_change : int, default=10
        Patience in epochs.
    tol : float, default=1e-4
        Minimum improvement.
    loss : {"squared_error", "huber"}, default="squared_error"
        Half the squared error, or the Huber loss with ``delta = 1`` on the
        standardized targets (one standard deviation): squared within it, absolute
        beyond, so outliers pull less.
    dtype : {"float32", "float64"}, default="float32"
        Precision of parameters and computation (predictions are float64).
    random_state : int, Generator, RandomState or None, default=None
        Seeds initialization, shuffling, dropout and the validation split.
    warm_start : bool, default=False
        Let ``fit`` continue from the current weights, optimizer state and target
        scaling.
    verbose : int, default=0
        Print one line per epoch when positive.

    Attributes
    ----------
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when ``X`` had string column names.
    n_outputs_ : int
        Number of target columns.
    y_mean_ : ndarray of shape () or (n_outputs_,)
        (Weighted) mean of the training targets; shape () when ``y`` was 1-D.
    y_scale_ : ndarray of shape () or (n_outputs_,)
        Their (weighted) standard deviation, 1 for a constant column.
    n_iter_ : int
    loss_curve_ : list of float
        Training loss per epoch, on the standardized targets.
    validation_scores_ : list of float or None
        Held-out R² per epoch with early stopping, else None.
    best_validation_score_ : float or None
    history_ : list of EpochRecord
    diverged_ : bool
    network_ : optuna_dl.nn.Network
    optimizer_ : optuna_dl.nn.Optimizer

    Examples
    --------
    >>> from sklearn.datasets import make_regression
    >>> from optuna_dl import DeepNetRegressor
    >>> X, y = make_regression(n_samples=200, n_features=5, noise=1.0, random_state=0)
    >>> model = DeepNetRegressor(max_epochs=200, random_state=0).fit(X, y)
    >>> model.score(X, y) > 0.95
    True
    """

    _parameter_constraints: ClassVar[dict[str, Any]] = {
        **_BaseDeepNet._parameter_constraints,
        "loss": rules.OneOf.keys_of(REGRESSION_LOSSES),
    }

    def __init__(
        self,
        n_layers: int = 2,
        n_units: int = 128,
        activation: str = "relu",
        batch_norm: bool = True,
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
        beta: float = 0.9,
        beta1: float = 0.9,
        beta2: float = 0.999,
        epsilon: float = 1e-8,
        learning_rate_decay: float = 0.0,
        decay_schedule: str = "inverse_time",
        batch_size: int = 128,
        max_epochs: int = 100,
        l2: float = 0.0,
        dropout: float = 0.0,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        loss: str = "squared_error",
        dtype: str = "float32",
        random_state: Any = None,
        warm_start: bool = False,
        verbose: int = 0,
    ) -> None:
        super().__init__(
            n_layers=n_layers,
            n_units=n_units,
            activation=activation,
            batch_norm=batch_norm,
            optimizer=optimizer,
            learning_rate=learning_rate,
            beta=beta,
            beta1=beta1,
            beta2=beta2,
            epsilon=epsilon,
            learning_rate_decay=learning_rate_decay,
            decay_schedule=decay_schedule,
            batch_size=batch_size,
            max_epochs=max_epochs,
            l2=l2,
            dropout=dropout,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            tol=tol,
            dtype=dtype,
            random_state=random_state,
            warm_start=warm_start,
            verbose=verbose,
        )
        self.loss = loss

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    # ------------------------------------------------------------------ fitting
    @with_callbacks
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> DeepNetRegressor:
        """Train for up to ``max_epochs`` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weight of each row, not all zero. The loss of a mini-batch
            is the weighted mean ``sum(w_i * loss_i) / sum(w_i)``, so a row of integer
            weight ``k`` counts as ``k`` copies of it within its batch (batch-norm
            statistics stay unweighted); the target mean and scale are weighted too.
            With early stopping the held-out rows keep their weights and their R² is
            weighted.

        Returns
        -------
        self : DeepNetRegressor
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    @with_callbacks
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> DeepNetRegressor:
        """Train for exactly one epoch over ``(X, y)``.

        The first call fixes the target scaling (``y_mean_``, ``y_scale_``) from its
        ``y``; later calls reuse it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), optional
            Row weights, as in :meth:`fit`.

        Returns
        -------
        self : DeepNetRegressor
        """
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)

    def _validate_training_data(
        self, X: Any, y: Any, *, reset: bool, dtype: Any, classes: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        X, y = validate_data(
            self,
            X,
            y,
            reset=reset,
            dtype=dtype,
            order="C",
            ensure_min_samples=1,
            multi_output=True,
            y_numeric=True,
        )
        return X, np.asarray(y, dtype=np.float64)

    def _initialize_targets(self, y: np.ndarray, classes: Any, weights: np.ndarray | None) -> None:
        mean = np.asarray(np.average(y, axis=0, weights=weights))
        scale = np.sqrt(np.asarray(np.average((y - mean) ** 2, axis=0, weights=weights)))
        self.y_mean_ = mean
        self.y_scale_ = np.where(scale > 0, scale, 1.0)
        self.n_outputs_ = 1 if y.ndim == 1 else int(y.shape[1])

    def _n_outputs(self) -> int:
        return int(self.n_outputs_)

    def _encode(self, y: np.ndarray) -> np.ndarray:
        n_outputs = 1 if y.ndim == 1 else y.shape[1]
        if n_outputs != self.n_outputs_:
            raise ValueError(
                f"y has {n_outputs} target columns; the model was fit on {self.n_outputs_}."
            )
        standardized = (y.reshape(y.shape[0], -1) - self.y_mean_) / self.y_scale_
        return np.ascontiguousarray(standardized, dtype=self.network_.dtype)

    def _batch_loss(
        self, outputs: np.ndarray, y: np.ndarray, weights: np.ndarray | None
    ) -> tuple[float, np.ndarray]:
        return REGRESSION_LOSSES[self.loss](outputs, y, weights)

    def _holdout_score(self, holdout: _Holdout) -> float:
        """R² of the held-out rows (standardized targets, the same R²), weighted,
        averaged over the outputs; -inf when the outputs overflow."""
        predicted = self.network_.infer(holdout.X).astype(np.float64)
        if not np.isfinite(predicted).all():
            return float("-inf")
        return _r2(holdout.y.astype(np.float64), predicted, holdout.weights)

    def _target_state(self) -> dict[str, Any]:
        return {"classes": None, "target_mean": self.y_mean_, "target_scale": self.y_scale_}

    def _set_target_state(self, state: ModelState) -> None:
        self.y_mean_ = np.asarray(state.target_mean, dtype=np.float64)
        self.y_scale_ = np.asarray(state.target_scale, dtype=np.float64)
        self.n_outputs_ = int(self.y_mean_.size)

    # --------------------------------------------------------------- inference
    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets, in the units of the training ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs_), float64
            1-D when the model was fit on a 1-D ``y``.

        Raises
        ------
        ValueError
            If the network's output overflows for some sample, rather than returning NaN.
        """
        outputs = self._finite_or_raise(self._logits(X)).astype(np.float64)
        predicted = outputs * self.y_scale_ + self.y_mean_
        return predicted.ravel() if self.y_mean_.ndim == 0 else predicted


def _r2(y: np.ndarray, predicted: np.ndarray, weights: np.ndarray | None) -> float:
    """``sklearn.metrics.r2_score`` (uniform average over columns, finite): 1 for a
    perfect fit of a constant column, 0 for an imperfect one."""
    residual = np.average((y - predicted) ** 2, axis=0, weights=weights)
    spread = np.average((y - np.average(y, axis=0, weights=weights)) ** 2, axis=0, weights=weights)
    perfect = np.where(residual == 0, 1.0, 0.0)
    safe = np.where(spread > 0, spread, 1.0)
    scores = np.where(spread > 0, 1.0 - residual / safe, perfect)
    return float(np.mean(scores))


@dataclass
class _Holdout:
    """The rows held out for early stopping (all None without it)."""

    X: np.ndarray | None = None
    y: np.ndarray | None = None
    weights: np.ndarray | None = None


@dataclass
class _Progress:
    """What one ``_train`` call tracks across its epochs."""

    best_loss: float = np.inf
    best_score: float = -np.inf
    stalled: int = 0  # epochs without an improvement of tol
    best_state: list[np.ndarray] | None = None  # weights of the best held-out epoch
    best_epoch: int = 0
    call_start: tuple[int, list[np.ndarray]] | None = None  # (n_iter_, state) at the start
    diverged: bool = False


# Below this many GEMM FLOPs per training step, BLAS threads cost more than they save.
SINGLE_THREAD_FLOPS = 3e7


def _blas_threads(network: Network, batch_size: int) -> int | None:
    """1 for small layers (overhead-bound: one thread is faster), else no limit."""
    flops = 6 * batch_size * sum(W.size for W in network.weights)
    return 1 if flops < SINGLE_THREAD_FLOPS else None


def _check_label_types(labels: Any, name: str) -> None:
    """Refuse labels that mix strings with other values.

    NumPy would silently turn ``[0, "a"]`` into ``["0", "a"]``, and an object array of
    them fails deep inside sorting; either way the user meant something else.
    """
    if getattr(labels, "dtype", None) is not None and labels.dtype.kind != "O":
        return  # a typed array holds one kind of value
    try:
        values = np.asarray(labels, dtype=object).ravel()
    except ValueError:
        return  # ragged or otherwise malformed: validate_data explains
    is_text = [isinstance(v, str) for v in values]
    if any(is_text) and not all(is_text):
        others = sorted({type(v).__name__ for v, text in zip(values, is_text) if not text})
        raise ValueError(
            f"{name} mixes strings with other values ({', '.join(others)}); labels must be "
            "all strings or all numbers."
        )


def _batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of each mini-batch of an epoch over ``n`` rows.

    A last batch of less than half ``batch_size`` rows is merged into the one before:
    batch-norm statistics of a handful of rows are noise, and one such step per epoch
    measurably hurts (a last batch of 3 rows cost 20 points of accuracy on digits).
    """
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] < batch_size / 2:
        starts.pop()
    return list(zip(starts, starts[1:] + [n]))


def _make_generator(random_state: Any) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**31 - 1))
    return np.random.default_rng(random_state)


def _format_record(record: EpochRecord, max_epochs: int) -> str:
    line = (
        f"epoch {record.epoch}/{max_epochs}  loss {record.loss:.4f}  "
        f"lr {record.learning_rate:.3g}  {record.seconds:.2f}s"
    )
    if record.validation_score is not None:
        line += f"  validation {record.validation_score:.4f}"
    return line
