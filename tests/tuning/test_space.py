"""SearchSpace: scales give the right distributions, tiers, conditions, round trips, errors."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from optuna_dl import DeepNetClassifier
from optuna_dl.tuning.space import Dimension, SearchSpace

N_DRAWS = 2000


def draw(space: SearchSpace, n: int = N_DRAWS, seed: int = 0) -> list[optuna.Trial]:
    """Ask ``n`` trials of a RandomSampler study and sample ``space`` in each."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    trials = []
    for _ in range(n):
        trial = study.ask()
        space.suggest(trial)
        trials.append(trial)
    return trials


def estimator_values(trials, name: str) -> np.ndarray:
    return np.array(
        [
            t.user_attrs["estimator_params"][name]
            for t in trials
            if name in t.user_attrs["estimator_params"]
        ]
    )


def only(*names: str, **overrides) -> SearchSpace:
    """The default space (all tiers) with only ``names`` switched on."""
    space = SearchSpace.default(max_tier=4)
    space = space.without(d.name for d in space.dimensions if d.name not in names)
    for name, changes in overrides.items():
        space = space.override(name, **changes)
    return space


# ------------------------------------------------------------------ scales
def test_learning_rate_is_log_uniform_over_four_decades():
    space = only("learning_rate")
    assert space.to_distributions() == {"learning_rate": FloatDistribution(1e-4, 1.0, log=True)}
    lr = estimator_values(draw(space), "learning_rate")
    assert lr.min() >= 1e-4 and lr.max() <= 1.0
    shares = np.histogram(np.log10(lr), bins=[-4, -3, -2, -1, 0])[0] / lr.size
    # Each decade gets a quarter (a uniform draw would put 90 % in the top decade).
    np.testing.assert_allclose(shares, 0.25, atol=0.04)


def test_beta_samples_one_minus_beta_log_uniformly():
    space = only("optimizer", "beta", optimizer={"choices": ("momentum",)})
    dims = space.to_distributions()
    assert dims["one_minus_beta"].log
    assert dims["one_minus_beta"].low == pytest.approx(1e-3, rel=1e-12)
    assert dims["one_minus_beta"].high == pytest.approx(1e-1, rel=1e-12)
    trials = draw(space)
    beta = estimator_values(trials, "beta")
    assert beta.size == N_DRAWS
    assert beta.min() >= 0.9 and beta.max() <= 0.999
    one_minus = np.array([t.params["one_minus_beta"] for t in trials])
    np.testing.assert_allclose(1 - beta, one_minus, rtol=1e-9)
    # Half the draws average over more than 100 gradients (beta > 0.99); a uniform
    # draw of beta on [0.9, 0.999] would give only 9 %.
    assert np.mean(beta > 0.99) == pytest.approx(0.5, abs=0.04)
    shares = np.histogram(np.log10(one_minus), bins=[-3, -2, -1])[0] / one_minus.size
    np.testing.assert_allclose(shares, 0.5, atol=0.04)


def test_power_of_two_gives_only_powers_of_two():
    space = only("batch_size")
    assert space.to_distributions() == {"log2_batch_size": IntDistribution(5, 9)}
    trials = draw(space, n=500)
    batch = estimator_values(trials, "batch_size")
    assert set(batch.tolist()) == {32, 64, 128, 256, 512}
    assert all(isinstance(b, int) for b in batch.tolist())
    assert all(t.params["log2_batch_size"] in range(5, 10) for t in trials)
    counts = np.unique(batch, return_counts=True)[1] / batch.size
    np.testing.assert_allclose(counts, 0.2, atol=0.06)  # uniform over the exponents


def test_n_units_is_an_int_on_a_log_scale():
    space = only("n_units")
    assert space.to_distributions() == {"n_units": IntDistribution(16, 512, log=True)}
    units = estimator_values(draw(space), "n_units")
    assert units.dtype.kind == "i" and units.min() >= 16 and units.max() <= 512
    # Below the geometric mean sqrt(16 * 512) ~ 90.5: about half, not 15 % (uniform).
    assert np.mean(units <= 90) == pytest.approx(0.5, abs=0.05)


def test_every_default_distribution():
    assert SearchSpace.default(max_tier=4).to_distributions() == {
        "learning_rate": FloatDistribution(1e-4, 1.0, log=True),
        "optimizer": CategoricalDistribution(("adam", "momentum")),
        "n_layers": IntDistribution(1, 4),
        "learning_rate_decay": FloatDistribution(1e-3, 1.0, log=True),
        "one_minus_beta": FloatDistribution(1e-3, 0.1, log=True),
        "n_units": IntDistribution(16, 512, log=True),
        "log2_batch_size": IntDistribution(5, 9),
        "one_minus_beta1": FloatDistribution(1e-3, 0.2, log=True),
        "one_minus_beta2": FloatDistribution(
            SearchSpace.default(4)["beta2"].from_estimator(0.9999), 0.01, log=True
        ),
        "epsilon": FloatDistribution(1e-10, 1e-6, log=True),
    }
    one_minus_beta2 = SearchSpace.default(4).to_distributions()["one_minus_beta2"]
    assert one_minus_beta2.low == pytest.approx(1e-4, rel=1e-12)


# ------------------------------------------------------------------- tiers
def test_tiers_follow_the_course_priorities():
    space = SearchSpace.default(max_tier=4)
    tiers = {d.name: d.tier for d in space.dimensions}
    assert tiers["learning_rate"] == 1
    assert tiers["n_layers"] == tiers["learning_rate_decay"] == tiers["beta"] == 2
    assert tiers["n_units"] == 3
    assert tiers["beta1"] == tiers["beta2"] == tiers["epsilon"] == 4
    assert space.tiers["one_minus_beta"] == 2  # keyed by sampled name
    assert space.tiers["log2_batch_size"] == 3


def test_adam_details_are_off_by_default():
    space = SearchSpace.default()
    off = {d.name for d in space.dimensions if not d.enabled}
    assert off == {"beta1", "beta2", "epsilon"}
    assert {"beta1", "beta2", "epsilon"} <= {d.name for d in space.dimensions}
    assert "one_minus_beta1" not in space.to_distributions()


@pytest.mark.parametrize("max_tier", [1, 2, 3, 4])
def test_default_switches_on_exactly_the_tiers_up_to_max_tier(max_tier):
    space = SearchSpace.default(max_tier=max_tier)
    assert len(space.dimensions) == 10
    for d in space.dimensions:
        assert d.enabled == (d.tier <= max_tier), d.name
    assert {d.name for d in space.active} == {
        d.name for d in space.dimensions if d.tier <= max_tier
    }
    assert set(space.tiers.values()) == set(range(1, max_tier + 1))


# ------------------------------------------------------------- conditions
def test_beta_only_with_momentum_and_adam_details_only_with_adam():
    trials = draw(SearchSpace.default(max_tier=4), n=200)
    optimizers = {t.params["optimizer"] for t in trials}
    assert optimizers == {"adam", "momentum"}
    for t in trials:
        momentum = t.params["optimizer"] == "momentum"
        assert ("one_minus_beta" in t.params) == momentum
        for name in ("one_minus_beta1", "one_minus_beta2", "epsilon"):
            assert (name in t.params) == (not momentum)
        params = t.user_attrs["estimator_params"]
        assert ("beta" in params) == momentum
        assert ("beta1" in params) == ("beta2" in params) == ("epsilon" in params) != momentum


def test_a_condition_on_an_inactive_parent_always_applies():
    space = SearchSpace.default().without(["optimizer"])
    trial = draw(space, n=1)[0]
    assert "optimizer" not in trial.params
    assert "one_minus_beta" in trial.params


def test_estimator_params_user_attr_is_what_suggest_returned():
    space = SearchSpace.default(max_tier=4)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(20):
        trial = study.ask()
        returned = space.suggest(trial)
        study.tell(trial, 0.0)
        stored = study.trials[-1]
        assert stored.user_attrs["estimator_params"] == returned
        assert space.to_estimator_params(stored.params) == returned
        assert set(returned) <= set(DeepNetClassifier().get_params())
        DeepNetClassifier(**returned)  # valid keyword arguments


def test_suggest_follows_enqueued_sampled_values():
    space = SearchSpace.default()
    study = optuna.create_study()
    study.enqueue_trial(
        {
            "learning_rate": 0.01,
            "optimizer": "momentum",
            "n_layers": 3,
            "learning_rate_decay": 0.1,
            "one_minus_beta": 0.01,
            "n_units": 64,
            "log2_batch_size": 6,
        }
    )
    params = space.suggest(study.ask())
    assert params == {
        "learning_rate": 0.01,
        "optimizer": "momentum",
        "n_layers": 3,
        "learning_rate_decay": 0.1,
        "beta": 0.99,
        "n_units": 64,
        "batch_size": 64,
    }


# ------------------------------------------------------------ round trips
def test_to_distributions_matches_what_trials_record():
    space = SearchSpace.default(max_tier=4)
    distributions = space.to_distributions()
    assert list(distributions) == [d.sampled_name for d in space.active]
    for trial in draw(space, n=30):
        for name, dist in trial.distributions.items():
            assert distributions[name] == dist


def test_create_trial_with_the_static_distributions():
    space = SearchSpace.default()
    estimator = {
        "learning_rate": 0.003,
        "optimizer": "momentum",
        "n_layers": 2,
        "learning_rate_decay": 0.01,
        "beta": 0.95,
        "n_units": 100,
        "batch_size": 256,
    }
    sampled = space.to_sampled_params(estimator)
    assert sampled["log2_batch_size"] == 8
    assert sampled["one_minus_beta"] == 0.05
    distributions = space.to_distributions()
    trial = create_trial(
        params=sampled, distributions={k: distributions[k] for k in sampled}, value=0.5
    )
    assert trial.state == TrialState.COMPLETE
    assert space.to_estimator_params(trial.params) == estimator


def test_round_trips_of_sampled_trials():
    space = SearchSpace.default(max_tier=4)
    for trial in draw(space, n=100):
        estimator = space.to_estimator_params(trial.params)
        assert estimator == trial.user_attrs["estimator_params"]
        back = space.to_sampled_params(estimator)
        assert back.keys() == trial.params.keys()
        for name, value in trial.params.items():
            if isinstance(value, str):
                assert back[name] == value
            else:
                assert back[name] == pytest.approx(value, rel=1e-9, abs=1e-15), name
            assert type(back[name]) is type(value), name


@settings(max_examples=60, deadline=None)
@given(
    one_minus=st.floats(1e-3, 0.1),
    exponent=st.integers(5, 9),
    units=st.integers(16, 512),
)
def test_round_trip_property(one_minus, exponent, units):
    space = SearchSpace.default()
    sampled = {"one_minus_beta": one_minus, "log2_batch_size": exponent, "n_units": units}
    estimator = space.to_estimator_params(sampled)
    assert 0.9 - 1e-12 <= estimator["beta"] <= 0.999 + 1e-12
    assert estimator["batch_size"] == 2**exponent
    back = space.to_sampled_params(estimator)
    assert back["log2_batch_size"] == exponent and back["n_units"] == units
    assert back["one_minus_beta"] == pytest.approx(one_minus, rel=1e-9)


def test_to_sampled_params_skips_inactive_and_foreign_parameters():
    space = SearchSpace.default()
    assert space.to_sampled_params({"beta1": 0.9, "l2": 0.1, "learning_rate": 0.1}) == {
        "learning_rate": 0.1
    }


# ------------------------------------------------------ override / without
def test_override_returns_a_changed_copy():
    space = SearchSpace.default()
    narrow = space.override("learning_rate", low=1e-3, high=1e-1, tier=2)
    assert narrow["learning_rate"].low == 1e-3 and narrow["learning_rate"].tier == 2
    assert narrow.to_distributions()["learning_rate"] == FloatDistribution(1e-3, 0.1, log=True)
    assert space["learning_rate"].low == 1e-4  # the original is untouched
    # by sampled name too, and switching a tier-4 entry on
    on = space.override("one_minus_beta1", enabled=True)
    assert on["beta1"].enabled and not space["beta1"].enabled
    linear = space.override("learning_rate", scale="linear")
    assert linear.to_distributions()["learning_rate"] == FloatDistribution(1e-4, 1.0)


def test_without_switches_entries_off_but_keeps_them():
    space = SearchSpace.default().without(["n_units", "batch_size"])
    assert "n_units" not in space.to_distributions()
    assert "log2_batch_size" not in space.to_distributions()
    assert not space["n_units"].enabled and space["n_units"].low == 16
    assert len(space.dimensions) == 10
    trial = draw(space, n=1)[0]
    assert "n_units" not in trial.user_attrs["estimator_params"]


def test_getitem_by_name_and_by_sampled_name():
    space = SearchSpace.default()
    assert space["beta"] is space["one_minus_beta"]
    assert space["batch_size"] is space["log2_batch_size"]
    with pytest.raises(KeyError):
        space["momentum"]


# ------------------------------------------------------------- bad spaces
@pytest.mark.parametrize(
    "make, entry, fragment",
    [
        (lambda: SearchSpace((Dimension("n_neurons", "int", 1, 8),)), "n_neurons", "not a Deep"),
        (lambda: Dimension("learning_rate", "float", 1.0, 1.0, "log"), "learning_rate", "low"),
        (lambda: Dimension("n_layers", "int", 4, 1), "n_layers", "low must be < high"),
        (lambda: Dimension("learning_rate", "float", 0.0, 1.0, "log"), "learning_rate", "> 0"),
        (lambda: Dimension("learning_rate", "float", -1.0, 1.0, "log"), "learning_rate", "> 0"),
        (lambda: Dimension("optimizer", "categorical", choices=()), "optimizer", "choices"),
        (lambda: Dimension("optimizer", "categorical"), "optimizer", "choices"),
        (lambda: Dimension("beta", "float", 0.9, 1.0, "reverse_log"), "beta", "high < 1"),
        (lambda: Dimension("beta", "float", 0.9, 1.5, "reverse_log"), "beta", "high < 1"),
        (lambda: Dimension("batch_size", "int", 30, 512, "power_of_two"), "batch_size", "30"),
        (lambda: Dimension("batch_size", "int", 32, 500, "power_of_two"), "batch_size", "500"),
        (lambda: Dimension("batch_size", "int", 0, 512, "power_of_two"), "batch_size", "> 0"),
        (lambda: Dimension("learning_rate", "float", 1e-4, 1, "cubic"), "learning_rate", "scale"),
        (lambda: Dimension("learning_rate", "double", 1e-4, 1), "learning_rate", "kind"),
        (lambda: Dimension("learning_rate", "float", None, 1.0), "learning_rate", "low"),
        (lambda: Dimension("l2", "float", 0.0, math.inf), "l2", "finite"),
        (lambda: Dimension("l2", "float", 0.0, 1.0, tier=0), "l2", "tier"),
        (
            lambda: SearchSpace.default().override("momentum", low=0.1),
            "momentum",
            "no entry",
        ),
        (
            lambda: SearchSpace.default().override("learning_rate", lower=0.1),
            "learning_rate",
            "lower",
        ),
        (
            lambda: SearchSpace.default().override("learning_rate", low=2.0),
            "learning_rate",
            "low must be < high",
        ),
        (
            lambda: SearchSpace(
                (Dimension("n_layers", "int", 1, 3), Dimension("n_layers", "int", 1, 4))
            ),
            "n_layers",
            "twice",
        ),
        (
            lambda: SearchSpace(
                (
                    Dimension("beta", "float", 0.9, 0.99, when=("optimizer", ("momentum",))),
                    Dimension("optimizer", "categorical", choices=("momentum", "adam")),
                )
            ),
            "beta",
            "earlier entry",
        ),
        (
            lambda: SearchSpace(
                (Dimension("beta", "float", 0.9, 0.99, when=("optimizer", ("momentum",))),)
            ),
            "beta",
            "'optimizer'",
        ),
    ],
)
def test_bad_spaces_raise_value_error_naming_the_entry(make, entry, fragment):
    with pytest.raises(ValueError, match=f"'{entry}'") as info:
        make()
    assert fragment in str(info.value)
