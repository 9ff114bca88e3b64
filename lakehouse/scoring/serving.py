"""The serving folder: how the scorer's driver hands its tasks the champion and the dimension
snapshot, without a Spark job or a registry call on the latency path.

The driver publishes each new thing as a bundle folder, written in full under a temporary name,
renamed into place, and then named in a one-line pointer file (``model/CURRENT``,
``snapshot/CURRENT``) replaced atomically. A task reads the two pointers at every call (two small
file reads) and loads a bundle only when its pointer changed; the loaded bundles stay in the
Python worker (workers are reused across micro-batches), so a task pays nothing per batch.

- ``model/v<version>-<id>/``: ``compiled.json`` (:class:`lakehouse.ml.compiled.CompiledModel`,
  plain JSON) and ``meta.json`` (version, threshold, reason profile, reasons per alert). Only a
  version that loaded, scored the feature table and matched MLlib is ever published: a broken
  champion is refused before its bundle exists.
- ``shadow/v<version>-<id>/``: the same for the shadow version, scored beside the champion
  without alerts (an empty pointer: no shadow).
- ``snapshot/<versions>-<id>/``: the user and merchant versions and the merchant daily counts as
  Parquet, read at known Delta versions (recorded in ``versions.json``).

The folder must be readable by every executor (local disk in local mode, a shared mount on a
cluster: ``scoring.serving_dir``). The last :data:`KEEP` bundles of each kind are kept, so a task
still loading the previous one never finds it gone.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.features.dimensions import DailyCounts, Snapshot, Versions
from lakehouse.ml.compiled import CompiledModel
from lakehouse.ml.explain import Profile
from lakehouse.scoring.kernel import ServingModel

if TYPE_CHECKING:
    import pandas as pd

MODEL, SHADOW, SNAPSHOT = "model", "shadow", "snapshot"
POINTER = "CURRENT"
KEEP = 3
_loaded: dict[tuple[str, str], tuple[str, object]] = {}  # (folder, kind) → (bundle name, loaded bundle)


def _publish(folder: Path, kind: str, name: str, write) -> None:
    """``write`` a bundle ``name`` of ``kind`` and point at it; an empty ``name``: point at nothing."""
    root = folder / kind
    root.mkdir(parents=True, exist_ok=True)
    if name:
        staging = root / f".staging-{uuid.uuid4().hex}"
        staging.mkdir()
        write(staging)
        staging.rename(root / name)
    pointer = root / f".{POINTER}-{uuid.uuid4().hex}"
    pointer.write_text(name)
    os.replace(pointer, root / POINTER)
    bundles = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=os.path.getmtime)
    for old in bundles[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)


def publish_model(folder: Path, model: ServingModel | None, kind: str = MODEL) -> None:
    """The champion (``kind`` MODEL) or the shadow version (SHADOW; None: no shadow)."""

    def write(target: Path) -> None:
        (target / "compiled.json").write_text(model.compiled.to_json())
        meta = {
            "version": model.version,
            "threshold": model.threshold,
            "profile": model.profile.to_json(),
            "top_reasons": model.top_reasons,
        }
        (target / "meta.json").write_text(json.dumps(meta))

    _publish(folder, kind, "" if model is None else f"v{model.version}-{uuid.uuid4().hex[:8]}", write)


def publish_snapshot(folder: Path, snapshot: Snapshot) -> None:
    def write(target: Path) -> None:
        snapshot.users.frame.to_parquet(target / "users.parquet", index=False)
        snapshot.merchants.frame.to_parquet(target / "merchants.parquet", index=False)
        snapshot.daily.frame.to_parquet(target / "daily.parquet", index=False)
        (target / "versions.json").write_text(json.dumps(snapshot.versions))

    tag = "-".join(str(snapshot.versions[k]) for k in sorted(snapshot.versions))
    _publish(folder, SNAPSHOT, f"{tag}-{uuid.uuid4().hex[:8]}", write)


def _read_model(bundle: Path) -> ServingModel:
    meta = json.loads((bundle / "meta.json").read_text())
    return ServingModel(
        version=int(meta["version"]),
        threshold=float(meta["threshold"]),
        compiled=CompiledModel.from_json((bundle / "compiled.json").read_text()),
        profile=Profile.from_json(meta["profile"]),
        top_reasons=int(meta["top_reasons"]),
    )


def _read_snapshot(bundle: Path) -> Snapshot:
    import pandas as pd

    def frame(name: str) -> pd.DataFrame:
        return pd.read_parquet(bundle / f"{name}.parquet")

    return Snapshot(
        Versions(frame("users")),
        Versions(frame("merchants")),
        DailyCounts(frame("daily")),
        json.loads((bundle / "versions.json").read_text()),
    )


def _pointer(path: Path) -> str:
    """A pointer file's bundle name (read at every call: plain ``os`` calls, no text-file layers)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 4096).decode().strip()
    finally:
        os.close(fd)


def _current(folder: Path, kind: str, read):
    root = folder / kind
    try:
        name = _pointer(root / POINTER)
    except FileNotFoundError:
        raise RuntimeError(f"nothing published in {root}: the scorer's driver publishes it before it starts") from None
    key = (str(folder), kind)
    cached = _loaded.get(key)
    if cached is None or cached[0] != name:
        cached = (name, read(root / name) if name else None)
        _loaded[key] = cached
    return cached[1]


def current(folder: str | Path, *, model_required: bool = True) -> tuple[ServingModel | None, Snapshot]:
    """The model and snapshot the driver published last (loaded once per worker and bundle). With
    ``model_required`` off, the model is None until one is published."""
    folder = Path(folder)
    model = None
    if model_required or (folder / MODEL / POINTER).exists():
        model = _current(folder, MODEL, _read_model)
    return model, _current(folder, SNAPSHOT, _read_snapshot)


def shadow(folder: str | Path) -> ServingModel | None:
    """The shadow version the driver published last; None when there is none."""
    folder = Path(folder)
    return _current(folder, SHADOW, _read_model) if (folder / SHADOW / POINTER).exists() else None
