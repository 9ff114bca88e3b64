"""Rows as columns: a dict of arrays reads as a DataFrame does, and the nullable arrays built from
numpy at once are what pandas builds from the same values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lakehouse.features.columns import frame, ints, objects, size
from lakehouse.features.offline import nullable


@pytest.mark.parametrize(
    ("values", "kind", "dtype"),
    [
        ([1, None, -(2**62), 0], "long", "Int64"),
        ([None], "int", "Int64"),
        ([], "long", "Int64"),
        ([1.5, None, float("nan"), float("inf"), -0.0, 1e308], "double", "Float64"),
        ([3, None], "double", "Float64"),
    ],
)
def test_nullable_arrays_equal_pandas_own(values, kind, dtype) -> None:
    got, expected = nullable(values, kind), pd.array(values, dtype=dtype)
    assert got.dtype == expected.dtype
    assert got.isna().tolist() == expected.isna().tolist()
    assert repr(got.tolist()) == repr(expected.tolist())


def test_a_dict_of_arrays_reads_as_the_same_dataframe() -> None:
    columns = {"id": np.array(["a", None], object), "n": np.array([1, 2]), "x": nullable([1.0, None], "double")}
    table = frame(columns)
    for rows in (columns, table):
        assert size(rows) == 2
        assert ints(rows["n"]).tolist() == [1, 2]
        assert objects(rows["id"]).tolist() == ["a", None]
    assert frame(table) is table and table["x"].dtype == "Float64"
