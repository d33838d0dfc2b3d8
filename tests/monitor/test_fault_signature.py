import numpy as np
import pytest

from autofab.errors import ConfigError
from autofab.monitor import FaultSignatureDetector, detector_from_dict, make_detector
from autofab.testing.detector import normal_data


def _stuck(X, col, start):
    X = X.copy()
    X[start:, col] = X[start, col]  # a valve that stops moving: its variance collapses
    return X


def _training():
    """Two normal runs, a stuck-signal fault (class 1) and a small mean shift (class 2)."""
    runs = [normal_data(600, 0), normal_data(600, 1)]
    stuck = _stuck(normal_data(400, 2), 2, 0)
    shift = normal_data(400, 3)
    shift[:, 4] += 1.0
    X = np.vstack([*runs, stuck, shift])
    y = np.r_[np.zeros(1200), np.ones(400), np.full(400, 2)].astype(int)
    r = np.r_[np.zeros(600), np.ones(600), np.full(400, 2), np.full(400, 3)]
    return X, y, r


@pytest.fixture(scope="module")
def fitted():
    X, y, r = _training()
    return FaultSignatureDetector(alpha=0.01, window=(10, 20), warmup=10).fit(X, y, runs=r)


def test_signature_far_near_alpha(fitted):
    far = np.mean([fitted.predict(normal_data(1500, s)).mean() for s in (11, 12)])
    assert far <= 3 * fitted.alpha + 0.02


def test_signature_catches_stuck_signal_and_ranks_it(fitted):
    X = _stuck(normal_data(500, 13), 2, 200)
    flags = fitted.predict(X)
    assert flags[230:].mean() > 0.9
    assert flags[20:200].mean() < 0.1
    C = fitted.contributions(X)[230:]
    assert np.allclose(C.sum(axis=1), 1.0)
    assert int(np.argmax(C.mean(axis=0))) == 2


def test_signature_catches_mean_shift(fitted):
    X = normal_data(500, 14)
    X[200:, 4] += 1.0
    assert fitted.predict(X)[240:].mean() > 0.8
    C = fitted.contributions(X)[240:]
    assert int(np.argmax(C.mean(axis=0))) == 4


def test_signature_warmup_rows_never_flagged(fitted):
    X = normal_data(100, 15)
    X[:, 1] += 50.0
    flags = fitted.predict(X)
    assert flags[:10].sum() == 0
    assert flags[10:].all()


def test_signature_json_registry_and_bad_params(fitted):
    back = detector_from_dict(fitted.to_dict())
    X = normal_data(200, 16)
    assert np.allclose(back.score_samples(X), fitted.score_samples(X))
    det = make_detector("fault_signature", 0.05, window=5, warmup=0)
    assert isinstance(det, FaultSignatureDetector)
    det.fit(normal_data(400, 17))  # without labels: multi-scale window PCA
    assert det.predict(normal_data(200, 18)).shape == (200,)
    with pytest.raises(ConfigError, match="n_signature"):
        FaultSignatureDetector(n_signature=0).fit(normal_data(100, 0))
    with pytest.raises(ConfigError, match="warmup"):
        FaultSignatureDetector(warmup=-1).fit(normal_data(100, 0))
