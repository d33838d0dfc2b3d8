import numpy as np

from autofab.monitor import SignatureCVADetector, detector_from_dict, make_detector
from autofab.testing.detector import normal_data


def _training():
    """Two normal runs and one labelled fault class: signal 2 stops moving."""
    stuck = normal_data(400, 2)
    stuck[:, 2] = stuck[0, 2]
    X = np.vstack([normal_data(600, 0), normal_data(600, 1), stuck])
    y = np.r_[np.zeros(1200), np.ones(400)].astype(int)
    r = np.r_[np.zeros(600), np.ones(600), np.full(400, 2)]
    return X, y, r


def test_signature_cva_union_keeps_far_and_catches_both_kinds():
    X, y, r = _training()
    det = SignatureCVADetector(alpha=0.01, lags=3, n_states=12, window=(10, 20), warmup=10)
    det.fit(X, y, runs=r)
    assert len(det.limits_) == 6  # window PCA T2, SPE, Fisher, signature, CVA T2, Q
    far = np.mean([det.predict(normal_data(1500, s)).mean() for s in (31, 32)])
    assert far <= 3 * det.alpha + 0.02
    # the labelled fault: a stuck signal
    S = normal_data(400, 33)
    S[200:, 2] = S[200, 2]
    assert det.predict(S)[230:].mean() > 0.9
    assert int(np.argmax(det.contributions(S)[230:].mean(axis=0))) == 2
    # an unlabelled change of the dynamics: extra variance on signal 5
    V = normal_data(400, 34)
    V[200:, 5] += np.random.default_rng(7).normal(0.0, 2.0, 200)
    assert det.predict(V)[200:].mean() > 0.5
    C = det.contributions(V)[200:]
    assert np.allclose(C.sum(axis=1), 1.0)
    assert int(np.argmax(C.mean(axis=0))) == 5
    back = detector_from_dict(det.to_dict())
    assert np.allclose(back.score_samples(V), det.score_samples(V))


def test_signature_cva_from_registry_without_labels():
    det = make_detector("signature_cva", 0.05, lags=1, n_states=3, window=5, warmup=0)
    det.fit(normal_data(400, 35))
    X = normal_data(200, 36)
    X[100:, 0] += 8.0
    assert det.predict(X)[105:].mean() > 0.9
