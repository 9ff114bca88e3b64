"""The serving folder: what the driver publishes is what a task loads, a new publication replaces
the old one at the task's next call, and old bundles are cleared but the last few."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lakehouse.features.dimensions import Snapshot
from lakehouse.ml.compiled import CompiledModel
from lakehouse.ml.explain import Profile
from lakehouse.scoring import serving
from lakehouse.scoring.kernel import ServingModel


def model(version: int) -> ServingModel:
    compiled = CompiledModel(
        algorithm="logistic_regression",
        numeric=("amount",),
        categorical=(),
        coefficients=np.array([0.5, -1.0]),
        intercept=0.25,
        scale_mean=np.array([10.0, 0.0]),
        scale_std=np.array([2.0, 1.0]),
    )
    profile = Profile({"amount": 1.0}, {"amount": [1, 2, 3, 4, 5]})
    return ServingModel(version, 0.4 + version / 100, compiled, profile, 3)


def snapshot(users_version: int) -> Snapshot:
    users = pd.DataFrame(
        {
            "user_id": ["u1", "u1", None],
            "updated_at": [10, 20, 30],
            "_partition": [0, 0, 0],
            "_offset": [1, 2, 3],
            "age": [30, 31, 40],
            "signup_day": [100, 100, 5],
            "latitude": [1.0, 2.0, 3.0],
            "longitude": [1.0, 2.0, np.nan],
        }
    )
    merchants = pd.DataFrame(
        {
            "merchant_id": ["m1"],
            "updated_at": [5],
            "_partition": [0],
            "_offset": [0],
            "category": ["food"],
            "latitude": [0.0],
            "longitude": [0.0],
        }
    )
    daily = pd.DataFrame({"merchant_id": ["m1", "m1"], "day": [1, 2], "tx_count": [3, 4], "fraud_count": [0, 1]})
    return Snapshot.build(users, merchants, daily, {"users": users_version, "merchants": 1, "daily": 2})


def test_a_task_loads_what_the_driver_published_and_follows_the_pointer(tmp_path) -> None:
    serving.publish_model(tmp_path, model(1))
    serving.publish_snapshot(tmp_path, snapshot(4))
    loaded, dims = serving.current(tmp_path)
    assert loaded.version == 1 and loaded.threshold == model(1).threshold and loaded.profile == model(1).profile
    x = np.array([[12.0, 0.0], [-1.0, 1.0]])
    assert np.array_equal(loaded.compiled.score_matrix(x), model(1).compiled.score_matrix(x))
    assert dims.versions == {"users": 4, "merchants": 1, "daily": 2}
    pd.testing.assert_frame_equal(dims.users.frame, snapshot(4).users.frame)
    pd.testing.assert_frame_equal(dims.daily.frame, snapshot(4).daily.frame)
    assert serving.current(tmp_path)[0] is loaded  # no reload while the pointer stays

    serving.publish_model(tmp_path, model(2))
    assert serving.current(tmp_path)[0].version == 2
    for version in range(3, 8):
        serving.publish_model(tmp_path, model(version))
    bundles = [p for p in (tmp_path / serving.MODEL).iterdir() if p.is_dir()]
    assert len(bundles) == serving.KEEP and serving.current(tmp_path)[0].version == 7


def test_a_task_before_any_publication_says_what_is_missing(tmp_path) -> None:
    import pytest

    with pytest.raises(RuntimeError, match="nothing published"):
        serving.current(tmp_path)


def test_a_shadow_version_is_published_beside_the_champion_and_withdrawn(tmp_path) -> None:
    assert serving.shadow(tmp_path) is None  # never published: no shadow
    serving.publish_model(tmp_path, model(1))
    serving.publish_model(tmp_path, model(2), serving.SHADOW)
    assert serving.shadow(tmp_path).version == 2
    serving.publish_snapshot(tmp_path, snapshot(4))
    assert serving.current(tmp_path)[0].version == 1  # the champion is still the champion
    serving.publish_model(tmp_path, None, serving.SHADOW)
    assert serving.shadow(tmp_path) is None
