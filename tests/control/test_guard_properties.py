"""Safety invariants as properties: no proposal, however wild, escapes the envelope."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from autofab.control import (
    Action,
    Controller,
    Envelope,
    GuardedLoop,
    InterventionKind,
    LoopMode,
    Observation,
    SafetyGuard,
)

TEMP = "s/a/l/c/e/temp"
WILD = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, 0.0]),
    st.floats(min_value=-1e3, max_value=1e3),
)
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def envelopes(draw, n=None):
    n = n or draw(st.integers(1, 3))
    lo, hi, rate = [], [], []
    for _ in range(n):
        a = draw(st.floats(-1e9, 1e9))
        b = draw(st.floats(-1e9, 1e9))
        lo.append(min(a, b))
        hi.append(max(a, b))
        rate.append(draw(st.one_of(st.just(math.inf), st.floats(1e-6, 1e6))))
    return Envelope(lo, hi, rate)


def inside(draw, env):
    return np.array([draw(st.floats(lo, hi)) for lo, hi in zip(env.mv_lo, env.mv_hi, strict=True)])


def assert_in_envelope(env, u, prev, dt):
    u = np.asarray(u)
    assert u.shape == env.mv_lo.shape
    assert np.all(np.isfinite(u)), u
    assert np.all(u >= env.mv_lo) and np.all(u <= env.mv_hi), (u, env)
    if prev is not None:
        slack = 4 * np.spacing(np.maximum(np.abs(prev), np.abs(u))) + 1e-12 * env.mv_rate * dt
        with np.errstate(invalid="ignore"):
            allowed = np.where(np.isinf(env.mv_rate), np.inf, env.mv_rate * dt + slack)
        assert np.all(np.abs(u - prev) <= allowed), (u, prev, env.mv_rate, dt)


@SETTINGS
@given(data=st.data())
def test_projection_always_inside_envelope_and_rate(data):
    env = data.draw(envelopes())
    prev = inside(data.draw, env)
    dt = data.draw(st.floats(min_value=1e-9, max_value=1e6))
    u = np.array([data.draw(WILD) for _ in range(env.n)])
    assert_in_envelope(env, env.project(u, prev, dt), prev, dt)


@SETTINGS
@given(data=st.data())
def test_projection_with_no_previous_value_or_bad_dt(data):
    env = data.draw(envelopes())
    u = np.array([data.draw(WILD) for _ in range(env.n)])
    assert_in_envelope(env, env.project(u, None, 1.0), None, 1.0)
    prev = inside(data.draw, env)
    bad_dt = data.draw(st.sampled_from([0.0, -1.0, math.nan, math.inf, -math.inf]))
    out = env.project(u, prev, bad_dt)
    if all(np.isinf(env.mv_rate)):
        assert_in_envelope(env, out, None, 1.0)
    else:  # a clock that does not advance allows no change on rate-limited channels
        assert np.all((out == prev) | np.isinf(env.mv_rate))


class Wild(Controller):
    """A controller whose proposals, timings and info come from Hypothesis."""

    def __init__(self, actions):
        self.actions = actions
        self.k = 0

    def reset(self, *, seed=None):
        self.k = 0
        return {}

    def step(self, observation):
        a = self.actions[self.k % len(self.actions)]
        self.k += 1
        if a is None:
            raise ValueError("broken controller")
        u, info = a
        return Action(np.asarray(u, dtype=np.float64), info)


@st.composite
def scenario(draw):
    env = draw(envelopes(n=draw(st.integers(1, 2))))
    n = env.n
    safe = inside(draw, env) if draw(st.booleans()) else None
    actions = draw(
        st.lists(
            st.one_of(
                st.none(),
                st.tuples(
                    st.lists(WILD, min_size=n, max_size=n),
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "model_trusted": st.booleans(),
                            "fallback": st.sampled_from(["", "nan"]),
                        },
                    ),
                ),
                st.tuples(st.lists(WILD, min_size=1, max_size=3), st.just({})),
            ),
            min_size=1,
            max_size=6,
        ),
    )
    mode_changes = st.sampled_from(
        [None, None, None, LoopMode.MANUAL, LoopMode.ADVISORY, LoopMode.AUTONOMOUS],
    )
    steps = draw(
        st.lists(
            st.tuples(
                st.floats(1e-3, 100.0),  # dt to this step
                mode_changes,
                st.one_of(st.none(), st.lists(WILD, min_size=n, max_size=n)),  # manual value
                st.one_of(
                    st.just(0.0), st.floats(0.0, 4.0), st.floats(0.0, 20.0), st.just(math.nan)
                ),
                st.one_of(st.just(1.0), st.floats(-1e3, 1e3), st.just(math.nan)),  # y
                st.one_of(  # temp tag for the interlock 'temp > 5'
                    st.just(0.0),
                    st.floats(-10.0, 5.0),
                    st.floats(-10.0, 10.0),
                    st.none(),
                    st.just(math.nan),
                ),
            ),
            min_size=1,
            max_size=25,
        ),
    )
    u0 = inside(draw, env)
    hold_s = draw(st.floats(0.0, 30.0))
    fallback = draw(st.sampled_from(["hold", "safe_value"]))
    return env, safe, actions, steps, u0, hold_s, fallback


@SETTINGS
@given(sc=scenario())
def test_guarded_loop_never_writes_outside_the_envelope(sc):
    env, safe, actions, steps, u0, hold_s, fallback = sc
    n = env.n
    guard = SafetyGuard(
        env,
        name="prop",
        interlocks=["temp > 5"],
        aliases={"temp": TEMP},
        hold_s=hold_s,
        fallback=fallback,
        safe_value=safe,
        stale_after_s=5.0,
    )
    loop = GuardedLoop(Wild(actions), guard, fallback=Wild(actions[::-1]))
    loop.reset(seed=0)
    t, prev, t_prev = 0.0, u0.copy(), None
    for dt, mode, manual, age, y, temp in steps:
        t += dt
        if mode is not None:
            man = None
            if manual is not None and all(math.isfinite(v) for v in manual):
                man = np.array(manual)
            try:
                loop.set_mode(mode, t, "test", manual_value=man)
            except ValueError:
                assert man is None or not np.all(np.isfinite(man))
        obs = Observation(
            t=t,
            y=np.full(1, y),
            sp=np.zeros(1),
            age=np.full(1, age),
            u_prev=prev,
        )
        process = {} if temp is None else {TEMP: temp}
        d = loop.step(obs, process)
        kinds = [iv.kind for iv in d.interventions]
        for k in set(kinds):
            event(str(k))
        for iv in d.interventions:
            assert isinstance(iv.kind, InterventionKind) and iv.reason and iv.loop == "prop"
        assert d.u.shape == (n,)
        if d.write:
            tripped = InterventionKind.INTERLOCK in kinds
            step_dt = dt if t_prev is not None else 1.0  # first step: period (1 s default)
            assert_in_envelope(env, d.u, None if tripped else prev, step_dt)
            if tripped:
                want = env.mv_lo if safe is None else safe
                assert np.array_equal(d.u, want)
            prev, t_prev = d.u.copy(), t
        else:
            assert d.mode is LoopMode.ADVISORY or "reason" in d.info
            assert_in_envelope(env, d.u, None, 1.0)
            t_prev = t
    counts = loop.intervention_counts()
    assert sum(counts.values()) == len(loop.interventions)
