import json

import numpy as np
import pytest

from autofab.errors import ConfigError, NotFittedError
from autofab.monitor import (
    FaultClassifier,
    FaultDirectionDetector,
    PCADetector,
    WindowPCADetector,
    default_detector,
    detector_from_dict,
    load_detector,
)
from autofab.testing.detector import normal_data
from service_support import shared_data


def _tep(name):
    x = np.loadtxt(shared_data("tep_braatz") / f"{name}.dat")
    return x.T if name == "d00" else x


def test_default_detector_api_and_far():
    det = default_detector(alpha=0.01).fit(normal_data(1500, 0))
    flags = det.predict(normal_data(3000, 9))
    assert flags.shape == (3000,)
    assert flags.mean() < 0.05


def test_predict_before_fit_raises():
    with pytest.raises(NotFittedError):
        PCADetector().predict(np.zeros((5, 3)))


def test_bad_input_named():
    with pytest.raises(ConfigError, match="NaN"):
        PCADetector().fit(np.full((50, 3), np.nan))
    with pytest.raises(ConfigError, match="alpha"):
        PCADetector(alpha=0.7).fit(normal_data(100, 0))


def test_json_roundtrip(tmp_path):
    det = default_detector(0.02).fit(normal_data(600, 0))
    path = tmp_path / "m.json"
    det.save(path)
    back = load_detector(path)
    X = normal_data(100, 1)
    assert np.allclose(back.score_samples(X), det.score_samples(X))
    with pytest.raises(ConfigError, match=r"m\.json"):
        (tmp_path / "m.json").write_text("{}")
        load_detector(path)
    assert detector_from_dict(json.loads(json.dumps(det.to_dict()))).threshold_ == det.threshold_


def test_tep_window_pca_and_cva_beat_pca_on_fault_5_and_keep_far():
    X0 = _tep("d00")
    te0, te5 = _tep("d00_te"), _tep("d05_te")
    pca = PCADetector(alpha=0.01).fit(X0)
    win = WindowPCADetector(alpha=0.01).fit(X0)
    cva = default_detector(alpha=0.01).fit(X0)
    for det in (pca, win, cva):
        assert det.predict(te0).mean() <= 0.06
    # fault 1 (A/C feed ratio step) is easy for both
    te1 = _tep("d01_te")
    assert pca.predict(te1)[160:].mean() > 0.95
    assert win.predict(te1)[160:].mean() > 0.95
    # windows of time context detect faults 5 and 1 no worse than plain PCA
    assert win.predict(te5)[160:].mean() >= pca.predict(te5)[160:].mean()
    # the default (CVA) sees the compensated step of fault 5 that both miss
    assert cva.predict(te5)[160:].mean() > 0.9


def test_tep_fault_direction_and_classifier():
    faults = (1, 5, 11)
    X = np.vstack([_tep("d00")] + [_tep(f"d{k:02d}") for k in faults])
    y = np.r_[np.zeros(500), np.repeat(faults, 480)].astype(int)
    det = FaultDirectionDetector(alpha=0.01).fit(X, y, runs=y)
    assert det.predict(_tep("d00_te")).mean() <= 0.06
    te5 = _tep("d05_te")
    # the Fisher direction of fault 5 catches what PCA misses once control compensates
    assert det.predict(te5)[160:].mean() > 0.9
    clf = FaultClassifier().fit(X, y, runs=y)
    acc = np.mean(clf.predict(te5)[260:] == 5)
    assert acc > 0.7
    # contributions of fault 1 (A/C feed ratio) rank XMEAS(4) or XMV(4), the stream-4 signals
    C = det.contributions(_tep("d01_te"))[200:]
    top = set(np.argsort(C.mean(axis=0))[-5:])
    assert top & {3, 44}, f"top contributing signals {sorted(top)}"
