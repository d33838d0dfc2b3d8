import numpy as np
import pytest

from autofab.errors import NotFittedError
from autofab.monitor.rul import RULRegressor, nasa_score, piecewise_rul, rmse
from service_support import shared_data


def test_scores():
    assert nasa_score([10], [10]) == 0.0
    # late by 10 costs more than early by 10
    assert nasa_score([10], [20]) > nasa_score([20], [10])
    assert rmse([0, 0], [3, 4]) == pytest.approx(np.sqrt(12.5))
    assert list(piecewise_rul(4, cap=2)) == [2, 2, 1, 0]


@pytest.mark.slow
def test_cmapss_subset_beats_constant_prediction():
    d = shared_data("cmapss")
    tr = np.loadtxt(d / "train_FD001.txt")
    te = np.loadtxt(d / "test_FD001.txt")
    rul = np.minimum(np.loadtxt(d / "RUL_FD001.txt"), 125)
    cols = [4 + s for s in (2, 3, 4, 7, 11, 12, 15, 17, 20, 21)]
    units = [tr[tr[:, 0] == u][:, cols] for u in range(1, 31)]
    test = [te[te[:, 0] == u][:, cols] for u in range(1, 101)]
    with pytest.raises(NotFittedError):
        RULRegressor().predict(test)
    m = RULRegressor(n_models=1, window=20, max_iter=60).fit(units)
    pred = m.predict(test)
    assert rmse(rul, pred) < 0.6 * rmse(rul, np.full(100, rul.mean()))
    hi = m.health_indicator(units[0])
    assert hi[:20].mean() > hi[-10:].mean() + 0.5
