import warnings

import numpy as np
import pytest

from autofab.errors import ConfigError, NotFittedError
from autofab.learn.arx import ARX, select_arx
from autofab.learn.excitation import CVWatch, aprbs, multisine, prbs, run_experiment
from autofab.learn.narx import NARX
from autofab.learn.registry import ModelRegistry
from autofab.learn.subspace import N4SID, select_n4sid
from autofab.learn.validate import fit_score, validate


def plant_2x2(n, seed=0, noise=0.01):
    """Two coupled first-order lags (dt = 1 s), 2 inputs, 2 outputs."""
    rng = np.random.default_rng(seed)
    u = aprbs(n, -1, 1, n_inputs=2, min_hold=3, max_hold=12, seed=seed)
    a = np.array([[0.9, 0.0], [0.05, 0.8]])
    b = np.array([[0.2, 0.05], [0.0, 0.3]])
    x = np.zeros(2)
    y = np.empty((n, 2))
    for k in range(n):
        y[k] = x + noise * rng.standard_normal(2)
        x = a @ x + b @ u[k]
    return u, y + np.array([50.0, 10.0])


def test_signals_respect_bounds_and_rate():
    for sig in (
        prbs(300, 1.0, 3.0, n_inputs=2, min_hold=4, du_max=0.5, seed=1),
        aprbs(300, 1.0, 3.0, n_inputs=2, min_hold=2, du_max=0.5, seed=1),
        multisine(300, 1.0, 3.0, n_inputs=2, du_max=0.5, seed=1),
    ):
        assert sig.shape == (300, 2)
        assert sig.min() >= 1.0 - 1e-12 and sig.max() <= 3.0 + 1e-12
        assert np.abs(np.diff(sig, axis=0)).max() <= 0.5 + 1e-12
        # the signal actually excites: it spans most of the range
        assert np.ptp(sig[:, 0]) > 1.0
    with pytest.raises(ConfigError):
        prbs(10, 2.0, 1.0)


def test_arx_recovers_true_dynamics_and_state_space():
    u, y = plant_2x2(1500)
    m = ARX(1, 1, 1).fit(u, y)
    a, b, _c, _d = m.state_space()
    assert a.shape == (2, 2) and b.shape == (2, 2)
    np.testing.assert_allclose(a, [[0.9, 0.0], [0.05, 0.8]], atol=0.02)
    np.testing.assert_allclose(b, [[0.2, 0.05], [0.0, 0.3]], atol=0.02)
    u_v, y_v = plant_2x2(400, seed=7)
    val = validate(m, u_v, y_v)
    assert val.passed and np.all(val.fit > 0.95)
    assert val.whiteness > 0.8


def test_order_selection_and_n4sid():
    u, y = plant_2x2(1200, seed=2)
    _m, score, table = select_arx(u, y)
    assert score > 0.9 and len(table) > 5
    s, s_score, _ = select_n4sid(u, y, orders=(1, 2, 3, 4))
    assert s_score > 0.9 and s.A_.shape[0] >= 2
    u_v, y_v = plant_2x2(400, seed=8)
    assert np.all(validate(s, u_v, y_v).fit > 0.9)
    # steady-state gain of the subspace model matches the plant's
    a, b, c, _ = s.state_space()
    g = c @ np.linalg.solve(np.eye(a.shape[0]) - a, b)
    g_true = np.linalg.solve(
        np.eye(2) - np.array([[0.9, 0.0], [0.05, 0.8]]), np.array([[0.2, 0.05], [0.0, 0.3]])
    )
    np.testing.assert_allclose(g, g_true, rtol=0.1, atol=0.05)


def test_narx_beats_arx_on_nonlinear_plant():
    rng = np.random.default_rng(3)
    n = 1500
    u = aprbs(n, 0.0, 1.0, min_hold=3, max_hold=15, seed=3)[:, 0]
    y = np.zeros(n)
    for k in range(1, n):  # gain grows with u (static nonlinearity inside a lag)
        y[k] = (
            0.85 * y[k - 1]
            + 0.15 * (2 * u[k - 1] + 3 * u[k - 1] ** 2)
            + 0.005 * rng.standard_normal()
        )
    lin = ARX(1, 1, 1).fit(u[:1000], y[:1000])
    nl = NARX(1, 1, 1).fit(u[:1000], y[:1000])
    f_lin = validate(lin, u[1000:], y[1000:]).fit[0]
    f_nl = validate(nl, u[1000:], y[1000:]).fit[0]
    assert f_nl > 0.97 and f_nl > f_lin + 0.02
    lo = nl.linearize([0.2], [2 * 0.2 + 3 * 0.04])
    hi = nl.linearize([0.8], [2 * 0.8 + 3 * 0.64])

    def gain(m):
        return float((m.C_ @ np.linalg.solve(np.eye(m.A_.shape[0]) - m.A_, m.B_))[0, 0])

    # true local gains: d(2u + 3u^2)/du = 2 + 6u
    assert gain(lo) == pytest.approx(2 + 6 * 0.2, rel=0.15)
    assert gain(hi) == pytest.approx(2 + 6 * 0.8, rel=0.15)


def test_a_diverging_narx_free_run_turns_nan_and_fails_validation():
    u = aprbs(600, 0.0, 1.0, min_hold=3, max_hold=15, seed=5)[:, 0]
    y = np.zeros(600)
    for k in range(1, 600):
        y[k] = 0.5 * y[k - 1] + 0.3 * u[k - 1] ** 2
    nl = NARX(1, 1, 1).fit(u, y)
    nl.coef_ = nl.coef_ * 0 + 2.0  # every feature weight 2: y' = 2 y^2 + ... explodes
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warnings on the way
        sim = nl.simulate(u[:200])
        res = validate(nl, u[:200], y[:200])
    assert np.isnan(sim[-1, 0]) and np.all(np.isfinite(sim[:2]))
    assert res.fit[0] == -np.inf


def test_not_fitted_and_registry_roundtrip(tmp_path):
    with pytest.raises(NotFittedError):
        ARX().predict(np.zeros((20, 1)), np.zeros((20, 1)))
    with pytest.raises(NotFittedError):
        N4SID().simulate(np.zeros((5, 1)))
    u, y = plant_2x2(600, seed=4)
    reg = ModelRegistry(tmp_path / "models")
    for model in (ARX(2, 2, 1).fit(u, y), N4SID(2).fit(u, y), NARX(1, 1, 1).fit(u, y)):
        name = type(model).__name__.lower()
        v1 = reg.save(name, model, data_window={"start": 0, "end": 600}, validation={"fit": [0.9]})
        v2 = reg.save(name, model)
        assert (v1, v2) == (1, 2)
        back = reg.load(name, 1)
        np.testing.assert_allclose(back.simulate(u[:50]), model.simulate(u[:50]))
        meta = reg.metadata(name, 1)
        assert (
            meta["data_window"] == {"start": 0, "end": 600}
            and meta["class"] == type(model).__name__
        )
    assert not list((tmp_path / "models").rglob("*.pkl"))
    with pytest.raises(ConfigError):
        reg.load("missing")


def test_fit_score_definition():
    y = np.sin(np.linspace(0, 6, 100))
    assert fit_score(y, y)[0] == pytest.approx(1.0)
    assert fit_score(y, np.full_like(y, y.mean()))[0] == pytest.approx(0.0, abs=1e-12)


def test_experiment_aborts_near_cv_limit_and_returns_to_baseline():
    # first-order plant y+ = 0.9 y + 0.1 * 10 u, CV limit 8 (u=1 would settle at 10)
    state = {"y": 0.0}

    def step(u):
        state["y"] = 0.9 * state["y"] + 1.0 * float(u[0])
        return np.array([state["y"], 0.0])

    sig = np.ones((200, 1))
    res = run_experiment(
        step,
        sig,
        np.zeros(1),
        [0],
        CVWatch(lo=np.array([-8.0]), hi=np.array([8.0])),
        obs0=np.zeros(2),
        du_max=0.5,
        settle_steps=30,
        max_retries=1,
    )
    assert res.aborted and res.events[0]["event"] == "abort"
    assert "high limit" in res.events[0]["reason"]
    assert res.y.max() < 8.0  # never reached the limit
    assert np.abs(np.diff(res.u[:, 0])).max() <= 0.5 + 1e-12
    k = res.events[0]["step"]
    # back to the baseline at the rate limit, then resumed at half amplitude
    assert res.u[k + 3, 0] == 0.0 and res.u[k + 30, 0] == 0.0
    assert res.u[-1, 0] == pytest.approx(0.5) and len(res.events) == 1
