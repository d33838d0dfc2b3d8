import numpy as np
import pytest

from autofab.errors import ConfigError
from autofab.monitor import CVADetector, default_detector, detector_from_dict, make_detector
from autofab.testing.detector import normal_data


@pytest.fixture(scope="module")
def cva():
    return CVADetector(alpha=0.01).fit(normal_data(2000, 0))


def test_cva_is_the_default_and_far_near_alpha(cva):
    assert isinstance(default_detector(0.01), CVADetector)
    far = np.mean([cva.predict(normal_data(2000, s)).mean() for s in (21, 22)])
    assert far <= 3 * cva.alpha + 0.02


def test_cva_catches_mean_shift_and_ranks_the_signal(cva):
    X = normal_data(600, 23)
    X[300:, 3] += 1.5
    assert cva.predict(X)[300:].mean() > 0.9
    C = cva.contributions(X)[300:]
    assert np.allclose(C.sum(axis=1), 1.0)
    assert int(np.argmax(C.mean(axis=0))) == 3


def test_cva_catches_variance_change(cva):
    X = normal_data(600, 24)
    X[300:, 1] += np.random.default_rng(5).normal(0.0, 1.0, 300)
    flags = cva.predict(X)
    assert flags[300:].mean() > 0.5
    assert flags[:300].mean() < 0.05
    assert int(np.argmax(cva.contributions(X)[300:].mean(axis=0))) == 1


def test_cva_json_registry_and_bad_params(cva):
    back = detector_from_dict(cva.to_dict())
    X = normal_data(100, 25)
    assert np.allclose(back.score_samples(X), cva.score_samples(X))
    small = make_detector("cva", 0.05, lags=1, n_states=50).fit(normal_data(200, 26))
    assert small.state_["J"].shape[0] == 11  # states clamped below the past size (12)
    with pytest.raises(ConfigError, match="lags"):
        CVADetector(lags=0).fit(normal_data(100, 0))
    with pytest.raises(ConfigError, match="n_states"):
        CVADetector(n_states=0).fit(normal_data(100, 0))
