"""The HTML report: every section present, edge-case studies, escaping, one plotly.js."""

from __future__ import annotations

import re

import numpy as np
import plotly.offline
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from optuna_dl.analysis import write_report

SECTIONS = ("summary", "importance", "prior", "epochs", "duration", "plots", "grid", "best")
TIERS = {"learning_rate": 1, "n_layers": 2, "optimizer": 2, "n_units": 3, "log2_batch_size": 3}


def _write(study, tmp_path, **kwargs) -> str:
    path = write_report(study, tmp_path / "sub" / "report.html", **kwargs)
    assert path == tmp_path / "sub" / "report.html"
    return path.read_text(encoding="utf-8")


def _plots(html: str) -> list[str]:
    return re.findall(r'<div id="(plot-\d+)" class="plotly-graph-div"', html)


def _check_page(html: str) -> None:
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    for key in SECTIONS:
        assert f'<section id="{key}">' in html
    assert "This part failed" not in html
    assert html.count("* plotly.js v") == 1  # inlined once
    ours = html.replace(plotly.offline.get_plotlyjs(), "")
    assert "<script src" not in ours and "https://" not in ours  # works offline
    ids = _plots(html)
    assert len(ids) == len(set(ids))


@pytest.mark.slow
def test_full_report(tuned_study, tmp_path):
    html = _write(tuned_study, tmp_path, space=TIERS, title="Digits, tuned")
    _check_page(html)
    assert "<title>Digits, tuned - optuna-dl report</title>" in html
    assert len(_plots(html)) == 13  # 4 importance/ranking, 7 of Optuna's, 2 grid-vs-random
    assert 'class="why"' not in html.split('<section id="plots">')[1].split("</section>")[0]
    assert "Spearman&#x27;s rho = <b>" in html or "Spearman's rho = <b>" in html
    assert "PED-ANOVA" in html and "MDI" in html and "fANOVA" in html
    assert "most trials running at once</td><td>2</td>" in html
    best = tuned_study.best_trial
    assert f'<td class="num">{best.number}</td>' in html
    assert "learning_rate=" in html  # estimator parameters of the best trials
    assert len(html) < 6_000_000


def test_empty_study(make_study, tmp_path):
    html = _write(make_study([], name="nothing yet"), tmp_path)
    _check_page(html)
    assert "the study has 0" in html
    assert "No prior tiers given" in html
    assert "No completed trial" in html
    assert _plots(html) == []


def test_single_trial(make_study, helpers, tmp_path):
    params = helpers.sample_params(np.random.default_rng(0))
    trial = helpers.build_trial(0, params, value=0.9, curve=[0.5, 0.9])
    html = _write(make_study([trial]), tmp_path, space=TIERS)
    _check_page(html)
    assert "Importances need at least 2 finished trials; the study has 1." in html
    assert "0.9 (trial 0)" in html


def test_only_pruned_trials_still_rank_by_epoch(make_study, helpers, tmp_path):
    rng = np.random.default_rng(1)
    trials = []
    for i in range(30):
        params = helpers.sample_params(rng)
        score = helpers.accuracy(params)
        trials.append(
            helpers.build_trial(i, params, state=TrialState.PRUNED, curve=[score / 2, score])
        )
    html = _write(make_study(trials), tmp_path, space=TIERS)
    _check_page(html)
    assert "the study has 0" in html  # no completed trial for the objective
    epochs = html.split('<section id="epochs">')[1].split("</section>")[0]
    assert '<td class="num">30</td><td class="num">30</td>' in epochs
    assert "learning_rate (1)" in epochs  # ranked from pruned trials alone
    assert len(_plots(epochs)) == 1


def test_failed_trials(make_study, helpers, tmp_path):
    rng = np.random.default_rng(2)
    trials = [
        helpers.build_trial(i, helpers.sample_params(rng), state=TrialState.FAIL) for i in range(4)
    ]
    html = _write(make_study(trials), tmp_path)
    _check_page(html)
    assert "4: 4 fail" in html
    assert "No trial reported intermediate values" in html


@pytest.mark.slow
def test_conditional_parameters_and_a_running_trial(make_study, helpers, tmp_path):
    rng = np.random.default_rng(4)
    trials = []
    for i in range(16):
        params = helpers.sample_params(rng)
        trials.append(helpers.build_trial(i, params, value=helpers.accuracy(params)))
    study = make_study(trials)
    study.add_trial(create_trial(state=TrialState.RUNNING))
    html = _write(study, tmp_path, space=TIERS)
    _check_page(html)
    assert "1 running" in html
    importance = html.split('<section id="importance">')[1].split("</section>")[0]
    assert "one_minus_beta" in importance and "not assessed" in importance


@pytest.mark.slow
def test_hostile_strings_are_escaped(make_study, tmp_path):
    evil = '<script>alert("x")</script>'
    dists = {"<img src=x onerror=alert(1)>": FloatDistribution(0, 1), "b": FloatDistribution(0, 1)}
    rng = np.random.default_rng(3)
    trials = []
    for _ in range(12):
        a, b = rng.uniform(size=2)
        params = {"<img src=x onerror=alert(1)>": float(a), "b": float(b)}
        trials.append(
            create_trial(
                params=params,
                distributions=dists,
                value=float(a),
                user_attrs={"estimator_params": {"activation": "</td></tr><script>x()</script>"}},
            )
        )
    html = _write(make_study(trials, name=evil), tmp_path, space={"b": 1, evil: 2})
    _check_page(html)
    assert "<script>alert" not in html
    assert "<script>x()" not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert html.count("<script") == html.count("</script>")


@pytest.mark.slow
@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_best_trials_follow_the_direction(make_study, tmp_path, direction):
    dist = {"x": FloatDistribution(0, 1)}
    trials = [create_trial(params={"x": v / 10}, distributions=dist, value=v) for v in range(10)]
    html = _write(make_study(trials, direction=direction), tmp_path)
    best = html.split('<section id="best">')[1]
    first = re.search(r"<tbody><tr><td class=\"num\">(\d+)</td>", best).group(1)
    assert first == ("0" if direction == "minimize" else "9")
