"""File-based model registry: versioned models as JSON metadata + ``.npz`` arrays.

Layout: ``<root>/<name>/v<NNNN>.json`` and ``v<NNNN>.npz``. The JSON holds the
model class (one of :data:`MODEL_CLASSES`, never an arbitrary import), its
constructor parameters, the data window it was fitted on, its validation
figures and the creation date (UTC, ISO 8601). Nothing is pickled.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from autofab.errors import ConfigError
from autofab.learn.arx import ARX
from autofab.learn.base import DynamicModel
from autofab.learn.narx import NARX
from autofab.learn.subspace import N4SID

MODEL_CLASSES: dict[str, type[DynamicModel]] = {"ARX": ARX, "N4SID": N4SID, "NARX": NARX}
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")


class ModelRegistry:
    """Versioned store of learned models under ``root``.

    Parameters
    ----------
    root : path
        Folder of the registry (created on first save).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _dir(self, name: str) -> Path:
        if not _NAME.match(name):
            raise ConfigError(f"model name {name!r} may only use letters, digits, '_', '.', '-'")
        return self.root / name

    def versions(self, name: str) -> list[int]:
        """Stored versions of ``name``, ascending."""
        d = self._dir(name)
        return sorted(int(p.stem[1:]) for p in d.glob("v*.json")) if d.exists() else []

    def save(
        self,
        name: str,
        model: DynamicModel,
        *,
        data_window: dict[str, Any] | None = None,
        validation: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> int:
        """Store ``model`` as the next version of ``name``; return the version."""
        cls = type(model).__name__
        if cls not in MODEL_CLASSES:
            raise ConfigError(
                f"model class {cls!r} cannot be registered; allowed: {', '.join(MODEL_CLASSES)}"
            )
        d = self._dir(name)
        d.mkdir(parents=True, exist_ok=True)
        version = (self.versions(name) or [0])[-1] + 1
        meta = {
            "name": name,
            "version": version,
            "class": cls,
            "params": model.get_params(),
            "data_window": data_window or {},
            "validation": validation or {},
            "extra": extra or {},
            "created": datetime.now(UTC).isoformat(),
        }
        arrays: dict[str, Any] = dict(model.to_arrays())
        np.savez(d / f"v{version:04d}.npz", **arrays)
        (d / f"v{version:04d}.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        return version

    def metadata(self, name: str, version: int | None = None) -> dict[str, Any]:
        """Metadata of a version (latest by default)."""
        vs = self.versions(name)
        if not vs:
            raise ConfigError(f"no model {name!r} in registry {self.root}")
        v = vs[-1] if version is None else version
        path = self._dir(name) / f"v{v:04d}.json"
        if not path.exists():
            raise ConfigError(f"model {name!r} has no version {v}; stored: {vs}")
        meta: dict[str, Any] = json.loads(path.read_text())
        return meta

    def load(self, name: str, version: int | None = None) -> DynamicModel:
        """Rebuild a stored model (latest version by default)."""
        meta = self.metadata(name, version)
        cls = MODEL_CLASSES.get(meta["class"])
        if cls is None:
            raise ConfigError(f"{name}: unknown model class {meta['class']!r}")
        with np.load(self._dir(name) / f"v{meta['version']:04d}.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        return cls.from_arrays(meta["params"], arrays)
