import numpy as np

from autofab.control.base import Observation
from autofab.control.mpc_scheduled import ScheduledMPC
from autofab.learn.excitation import aprbs
from autofab.learn.narx import NARX


def plant(y, u):
    """First-order lag whose static gain rises with u: y_ss = 2u + 3u^2."""
    return 0.85 * y + 0.15 * (2 * u + 3 * u**2)


def test_scheduled_mpc_tracks_across_operating_range():
    rng = np.random.default_rng(0)
    u = aprbs(1500, 0.0, 1.0, min_hold=3, max_hold=15, seed=1)[:, 0]
    y = np.zeros(1500)
    for k in range(1, 1500):
        y[k] = plant(y[k - 1], u[k - 1]) + 0.002 * rng.standard_normal()
    narx = NARX(1, 1, 1).fit(u, y)
    levels = np.quantile(u, [0.1, 0.3, 0.5, 0.7, 0.9])[:, None]
    ctrl = ScheduledMPC.from_narx(narx, levels, dt=1.0, u_lo=0.0, u_hi=1.0, horizon=20, r_du=0.01)
    ctrl.reset(u0=[0.1])
    x, used = 0.2, set()
    for k in range(300):
        sp = 0.5 if k < 150 else 4.0  # low-gain region, then high-gain region
        act = ctrl.step(Observation(t=float(k), y=np.array([x]), sp=np.array([sp])))
        assert 0.0 <= act.u[0] <= 1.0
        used.add(act.info["model_index"])
        x = plant(x, act.u[0])
        if k in (149, 299):
            assert abs(x - sp) < 0.01 * max(sp, 1.0)
    assert len(used) >= 2 and ctrl.switches >= 1
