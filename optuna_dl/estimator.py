"""DeepNetClassifier: the NumPy network behind a scikit-learn classifier."""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.callback import CallbackSupportMixin, with_callbacks
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import threadpool_limits

from optuna_dl import _validation as rules
from optuna_dl.callbacks import EpochRecord
from optuna_dl.nn import kernels
from optuna_dl.nn.activations import ACTIVATIONS
from optuna_dl.nn.losses import log_softmax, softmax_cross_entropy
from optuna_dl.nn.network import Network
from optuna_dl.nn.optimizers import OPTIMIZERS, Optimizer, make_optimizer
from optuna_dl.nn.schedules import SCHEDULES

DTYPES = {"float32": np.float32, "float64": np.float64}


class DivergenceWarning(UserWarning):
    """Training produced a non-finite loss or weight and was stopped."""


_PARAMETER_RULES: dict[str, Any] = {
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


class DeepNetClassifier(CallbackSupportMixin, ClassifierMixin, BaseEstimator):
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
    @with_callbacks
    def fit(self, X: Any, y: Any) -> DeepNetClassifier:
        """Train for up to ``max_epochs`` epochs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)

        Returns
        -------
        self : DeepNetClassifier
        """
        return self._fit(X, y, incremental=False)

    @with_callbacks
    def partial_fit(self, X: Any, y: Any, classes: Any = None) -> DeepNetClassifier:
        """Train for exactly one epoch over ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        classes : array-like of shape (n_classes,), optional
            Every label that will ever be seen; required on the first call when
            ``y`` might not contain them all.

        Returns
        -------
        self : DeepNetClassifier
        """
        return self._fit(X, y, incremental=True, classes=classes)

    def _fit(self, X: Any, y: Any, *, incremental: bool, classes: Any = None):
        rules.check_parameters(type(self).__name__, self.get_params(deep=False), _PARAMETER_RULES)
        _check_label_types(y, "y")
        if classes is not None:
            _check_label_types(classes, "classes")
        dtype = DTYPES[self.dtype]
        fitted = hasattr(self, "network_")
        reset = not fitted or not (incremental or self.warm_start)
        X, y = validate_data(self, X, y, reset=reset, dtype=dtype, order="C", ensure_min_samples=1)
        check_classification_targets(y)
        if reset:
            self._initialize(X, y, classes)
        elif classes is not None and not np.array_equal(np.unique(classes), self.classes_):
            raise ValueError(
                f"classes={list(np.unique(classes))!r} differs from the classes of the "
                f"first partial_fit call {list(self.classes_)!r}."
            )
        elif dtype != self.network_.dtype:
            raise ValueError(
                f"dtype={self.dtype!r} differs from the fitted network's "
                f"{self.network_.dtype.name}; refit from scratch to change it."
            )
        y_index = self._encode(y)

        X_val = y_val = None
        if self.early_stopping and not incremental:
            X, X_val, y_index, y_val = self._validation_split(X, y_index)
            if self.validation_scores_ is None:  # warm start after a fit without it
                self.validation_scores_ = []

        context = self._init_callback_context(max_subtasks=1 if incremental else self.max_epochs)
        context.call_on_fit_task_begin(estimator=self, X=X, y=y)
        n_epochs = 1 if incremental else self.max_epochs
        self._train(X, y_index, X_val, y_val, n_epochs, context, check_outputs=not incremental)
        context.call_on_fit_task_end(estimator=self, X=X, y=y)
        return self

    def _initialize(self, X: np.ndarray, y: np.ndarray, classes: Any) -> None:
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
        self._rng = _make_generator(self.random_state)
        self.network_ = self._new_network(X.shape[1], labels.size)
        self.optimizer_ = self._make_optimizer()
        self.n_iter_ = 0
        self.loss_curve_: list[float] = []
        self.validation_scores_: list[float] | None = [] if self.early_stopping else None
        self.best_validation_score_: float | None = None
        self.history_: list[EpochRecord] = []
        self.diverged_ = False

    def _new_network(self, n_features: int, n_classes: int) -> Network:
        return Network(
            n_features,
            n_classes,
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

    def _validation_split(self, X: np.ndarray, y: np.ndarray):
        counts = np.bincount(y, minlength=self.classes_.size)
        n_val = int(np.ceil(self.validation_fraction * X.shape[0]))
        n_classes = self.classes_.size
        stratify = (
            y
            if counts.min() >= 2 and n_val >= n_classes and X.shape[0] - n_val >= n_classes
            else None
        )
        if X.shape[0] - n_val < 1 or n_val < 1:
            raise ValueError(
                f"early_stopping with validation_fraction={self.validation_fraction} "
                f"leaves no training or no validation samples out of {X.shape[0]}."
            )
        seed = int(self._rng.integers(2**31 - 1))
        X_train, X_val, y_train, y_val = train_test_split(
            X, y, test_size=n_val, stratify=stratify, random_state=seed
        )
        return X_train, X_val, y_train, y_val

    def _train(
        self, X, y, X_val, y_val, n_epochs: int, context: Any, check_outputs: bool = False
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
            self._run_epochs(X, y, X_val, y_val, n_epochs, context, batches, check_outputs)

    def _run_epochs(
        self, X, y, X_val, y_val, n_epochs, context, batches, check_outputs=False
    ) -> None:
        network, optimizer, rng = self.network_, self.optimizer_, self._rng
        n = X.shape[0]
        params, grads = [network.flat_params], [network.flat_grads]
        weights, weight_grads = network.weights, network.weight_grads
        batch_buffer = np.empty((max(b - a for a, b in batches), X.shape[1]), X.dtype)
        l2 = float(self.l2)
        best_loss, best_score, stalled = np.inf, -np.inf, 0
        best_state: list[np.ndarray] | None = None
        best_epoch = 0
        call_start: tuple[int, list[np.ndarray]] | None = None
        diverged = False
        seen = [X] if X_val is None else [X, X_val]  # every row fit was given
        callbacks = [
            cb for cb in getattr(self, "_skl_callbacks", []) if hasattr(cb, "on_epoch_end")
        ]
        for _ in range(n_epochs):
            started = time.perf_counter()
            learning_rate = float(
                SCHEDULES[self.decay_schedule](
                    self.learning_rate, self.learning_rate_decay, self.n_iter_
                )
            )
            subcontext = context.subcontext(task_name="epoch")
            subcontext.call_on_fit_task_begin(estimator=self)
            snapshot = [a.copy() for a in network.state_arrays()]
            if call_start is None:
                call_start = (self.n_iter_, snapshot)
            order = rng.permutation(n)
            total = 0.0
            for start, stop in batches:
                batch = order[start:stop]
                m = batch.size
                X_batch = kernels.take_rows(X, batch, batch_buffer[:m])
                logits = network.forward(X_batch, training=True)
                loss, dlogits = softmax_cross_entropy(logits, y[batch])
                network.backward(dlogits)
                if l2 > 0:
                    for W, dW in zip(weights, weight_grads):
                        dW += (l2 / m) * W
                        loss += l2 / (2 * m) * float(np.vdot(W, W))
                optimizer.update(params, grads, learning_rate)
                total += loss * m
            epoch_loss = total / n
            if not (np.isfinite(epoch_loss) and np.isfinite(network.flat_params).all()):
                states = [(self.n_iter_, snapshot), call_start]
                self._stop_diverged(seen, states, learning_rate)
                diverged = True
                break
            self.n_iter_ += 1
            self.loss_curve_.append(epoch_loss)
            score = None
            if X_val is not None:
                score = float(np.mean(self._predict_index(X_val) == y_val))
                self.validation_scores_.append(score)
            record = EpochRecord(
                self.n_iter_, epoch_loss, score, learning_rate, time.perf_counter() - started
            )
            self.history_.append(record)
            if self.verbose:
                print(_format_record(record, self.max_epochs))

            stop = subcontext.call_on_fit_task_end(estimator=self)
            for callback in callbacks:
                stop = bool(callback.on_epoch_end(self, record)) or stop
            if n_epochs == 1:
                break
            if score is not None:
                if score > best_score + self.tol:
                    best_score, stalled = score, 0
                    best_state = [a.copy() for a in network.state_arrays()]
                    best_epoch = self.n_iter_
                else:
                    stalled += 1
            elif epoch_loss < best_loss - self.tol:
                best_loss, stalled = epoch_loss, 0
            else:
                stalled += 1
            if stop or stalled >= self.n_iter_no_change:
                break
        # Finite weights can still be so large that inference overflows; the next epoch
        # notices (its loss is not finite), but after the last one fit checks the model it
        # returns, so that it never outputs NaN on the data it was fit on.
        if best_state is not None and best_epoch <= self.n_iter_:  # not rolled back
            last = [a.copy() for a in network.state_arrays()]
            network.set_state_arrays(best_state)
            if self._finite_outputs(seen):
                self.best_validation_score_ = best_score
                return
            network.set_state_arrays(last)
        if check_outputs and not diverged and call_start is not None:
            if not self._finite_outputs(seen):
                states = [(self.n_iter_ - 1, snapshot), call_start]
                self._stop_diverged(seen, states, learning_rate, epoch=self.n_iter_)

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
            fresh = self._new_network(seen[0].shape[1], self.classes_.size)
            self.network_.set_state_arrays(fresh.state_arrays())
            n_iter, restored = 0, "the weights were re-initialized"
        dropped = self.n_iter_ - n_iter
        if dropped:
            for records in (self.loss_curve_, self.history_, self.validation_scores_):
                if records is not None:
                    del records[max(len(records) - dropped, 0) :]
            self.n_iter_ = n_iter
        self.optimizer_ = self._make_optimizer()
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

    def _predict_index(self, X: np.ndarray) -> np.ndarray:
        return np.argmax(self.network_.infer(X), axis=1)

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
        logits = self._logits(X)
        overflowed = ~np.isfinite(logits).all(axis=1)
        if overflowed.any():
            rows = np.flatnonzero(overflowed)
            raise ValueError(
                f"the network's output is not finite for {rows.size} of {logits.shape[0]} "
                f"samples (first: row {rows[0]}): their features are too large in magnitude "
                f"for this {self.network_.dtype.name} model (or it diverged in training). "
                "Scale the features, e.g. with StandardScaler."
            )
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

    # ------------------------------------------------------------- persistence
    def save(self, path: Any) -> None:
        """Write the fitted model to an ``.npz`` file (arrays plus a JSON header).

        Parameters
        ----------
        path : str or path-like
        """
        from optuna_dl._persistence import save_model

        save_model(self, path)

    @classmethod
    def load(cls, path: Any) -> DeepNetClassifier:
        """Read a model written by :meth:`save`; never unpickles, never runs code.

        Parameters
        ----------
        path : str or path-like

        Returns
        -------
        DeepNetClassifier
        """
        from optuna_dl._persistence import load_model

        return load_model(cls, path)


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
