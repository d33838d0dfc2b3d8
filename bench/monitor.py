"""Monitor benchmark: Tennessee Eastman (Braatz set) fault detection and C-MAPSS FD001 RUL.

Usage: PYTHONPATH=src python bench/monitor.py [--skip-rul] [--skip-tep]

TEP: detectors fitted on d00 (normal); the supervised ones also on the
training runs d01..d21 without 3, 9, 15, labelled by fault, and on d03, d09,
d15 as extra normal runs (their faults do not show in the measurements,
Chiang et al. 2001; they bring run-to-run variation to the calibration).
Thresholds from blocked cross-validation on training data only, alpha = 0.01.
Detection rate on rows 160+ of each dNN_te, false-alarm rate on d00_te,
detection delay (samples after 160 to the first of 3 consecutive flags;
1 sample = 3 min). Plain PCA is the peer in the same run.
C-MAPSS: RMSE and NASA score on the 100 FD001 test engines, true RUL capped at
125, against a ridge regression on the same features (peer) and published
figures.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from autofab.monitor import (
    DynamicPCADetector,
    FaultClassifier,
    FaultDirectionDetector,
    FaultSignatureDetector,
    PCADetector,
    SignatureCVADetector,
    WindowPCADetector,
    default_detector,
)
from autofab.monitor.rul import RULRegressor, nasa_score, rmse

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if not DATA.exists():
    DATA = Path("/work/shared/data")
OUT = Path(__file__).resolve().parent / "results"
TARGET = [k for k in range(1, 22) if k not in (3, 9, 15)]
HARD = {5: 0.57, 10: 0.87, 16: 0.90, 20: 0.84, 21: 0.60}  # SDAE-kNN, Zhang et al. 2018


def tep(name: str) -> np.ndarray:
    x = np.loadtxt(DATA / "tep_braatz" / f"{name}.dat")
    return x.T if name == "d00" else x


def delay(flags: np.ndarray, start: int = 160, run: int = 3) -> float:
    f = flags[start:]
    for i in range(len(f) - run + 1):
        if f[i : i + run].all():
            return float(i)
    return float("nan")


def bench_tep(alpha: float) -> dict:
    X0 = tep("d00")
    test = {k: tep(f"d{k:02d}_te") for k in range(22)}
    train = {k: tep(f"d{k:02d}") for k in TARGET}
    quiet = [3, 9, 15]  # faults invisible in the measurements: extra normal runs
    Xs = np.vstack([X0] + [train[k] for k in TARGET] + [tep(f"d{k:02d}") for k in quiet])
    ys = np.r_[np.zeros(len(X0)), np.repeat(TARGET, 480), np.zeros(480 * len(quiet))]
    ys = ys.astype(int)
    runs = np.r_[
        np.zeros(len(X0)), np.repeat(TARGET, 480), np.repeat([100 + k for k in quiet], 480)
    ]
    dets = {
        "pca (peer)": (PCADetector(alpha), False),
        "dpca": (DynamicPCADetector(alpha), False),
        "window_pca": (WindowPCADetector(alpha), False),
        "default (cva)": (default_detector(alpha), False),
        "fault_direction (supervised)": (FaultDirectionDetector(alpha), True),
        "fault_signature (supervised)": (FaultSignatureDetector(alpha), True),
        "signature_cva (supervised)": (SignatureCVADetector(alpha), True),
    }
    res: dict = {}
    for name, (det, sup) in dets.items():
        t0 = time.perf_counter()
        det.fit(Xs, ys, runs=runs) if sup else det.fit(X0)
        fit_s = time.perf_counter() - t0
        flags = {k: det.predict(test[k]) for k in range(22)}
        dr = {k: float(flags[k][160:].mean()) for k in range(1, 22)}
        res[name] = {
            "fit_s": fit_s,
            "far_d00_te": float(flags[0].mean()),
            "far_prefault": float(np.mean([flags[k][:160].mean() for k in range(1, 22)])),
            "dr": dr,
            "delay": {k: delay(flags[k]) for k in range(1, 22)},
            "mean_dr_target": float(np.mean([dr[k] for k in TARGET])),
            "mean_dr_all": float(np.mean(list(dr.values()))),
        }
    clf = FaultClassifier().fit(Xs[ys > 0], ys[ys > 0], runs=runs[ys > 0])
    acc = {k: float(np.mean(clf.predict(test[k])[160:] == k)) for k in TARGET}
    res["classifier_accuracy"] = {"per_fault": acc, "mean": float(np.mean(list(acc.values())))}
    return res


def bench_rul() -> dict:
    d = DATA / "cmapss"
    tr = np.loadtxt(d / "train_FD001.txt")
    te = np.loadtxt(d / "test_FD001.txt")
    y = np.minimum(np.loadtxt(d / "RUL_FD001.txt"), 125.0)
    cols = [4 + s for s in (2, 3, 4, 7, 8, 9, 11, 12, 13, 14, 15, 17, 20, 21)]
    units = [tr[tr[:, 0] == u][:, cols] for u in np.unique(tr[:, 0])]
    test = [te[te[:, 0] == u][:, cols] for u in np.unique(te[:, 0])]
    t0 = time.perf_counter()
    m = RULRegressor(n_models=3).fit(units)
    p = m.predict(test)
    fit_s = time.perf_counter() - t0
    # peer: ridge regression on the same features (the health-indicator map, scaled)
    p_lin = np.clip(
        np.array([m.hi_.predict(m._unit_features(u, None))[-1] for u in test]) * 125, 0, 125
    )
    return {
        "rmse": rmse(y, p),
        "nasa_score": nasa_score(y, p),
        "fit_predict_s": fit_s,
        "peer_ridge_rmse": rmse(y, p_lin),
        "peer_ridge_score": nasa_score(y, p_lin),
        "published_best_rmse": 11.0,
        "published_lstm_rmse": 16.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alpha", type=float, default=0.01)
    ap.add_argument("--skip-rul", action="store_true")
    ap.add_argument("--skip-tep", action="store_true")
    a = ap.parse_args()
    out: dict = {}
    t0 = time.perf_counter()
    if not a.skip_tep:
        r = bench_tep(a.alpha)
        out["tep"] = r
        names = [n for n in r if n != "classifier_accuracy"]
        print(f"TEP Braatz, alpha={a.alpha}: detection rate on rows 160+ per fault")
        for i, n in enumerate(names):
            print(f"  column {i}: {n}")
        print("fault " + " ".join(f"{i:>14}" for i in range(len(names))) + "  SDAE-kNN")
        for k in range(1, 22):
            row = " ".join(f"{r[n]['dr'][k]:14.3f}" for n in names)
            print(f"{k:5d} {row}  {HARD.get(k, float('nan')):8.2f}")
        for key in ("mean_dr_target", "mean_dr_all", "far_d00_te", "far_prefault", "fit_s"):
            print(f"{key:>14} " + " ".join(f"{r[n][key]:14.3f}" for n in names))
        med = {n: float(np.nanmedian([r[n]["delay"][k] for k in TARGET])) for n in names}
        print(
            "median delay  " + " ".join(f"{med[n]:14.1f}" for n in names) + "  (samples of 3 min)"
        )
        ratio = r["default (cva)"]["mean_dr_target"] / r["pca (peer)"]["mean_dr_target"]
        print(f"default / pca mean DR ratio: {ratio:.3f}")
        for n in names[2:]:
            sup = r[n]
            print(
                f"hard faults vs SDAE-kNN ({n}): "
                + ", ".join(
                    f"{k}: {sup['dr'][k]:.2f}/{v:.2f}{' ok' if sup['dr'][k] > v else ' MISS'}"
                    for k, v in HARD.items()
                )
            )
        acc = r["classifier_accuracy"]["mean"]
        print(f"fault-type accuracy (LDA, 18 classes, rows 160+): {acc:.3f}")
    if not a.skip_rul:
        r2 = bench_rul()
        out["cmapss_fd001"] = r2
        print(
            f"C-MAPSS FD001: RMSE {r2['rmse']:.2f} NASA score {r2['nasa_score']:.0f} "
            f"(ridge peer RMSE {r2['peer_ridge_rmse']:.2f} score {r2['peer_ridge_score']:.0f}; "
            f"ratio {r2['rmse'] / r2['peer_ridge_rmse']:.3f}; published best ~11.0, LSTM ~16) "
            f"in {r2['fit_predict_s']:.0f} s"
        )
    out["total_s"] = time.perf_counter() - t0
    print(f"total {out['total_s']:.0f} s")
    OUT.mkdir(exist_ok=True)
    (OUT / "monitor.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
