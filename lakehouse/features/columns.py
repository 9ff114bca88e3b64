"""Rows as columns: what the feature and scoring kernels take and give.

A batch of rows is a mapping of column name → array, all of one length: a pandas DataFrame (its
columns are Series; what a Spark Python step receives and must return) or a plain dict of numpy
arrays and pandas' nullable arrays (``Int64``, ``Float64``: null as a mask). The kernels read
either and build dicts: a dict costs nothing to build, where a DataFrame costs a fixed price per
column and per row-selection that dominates a call holding a single event (the decision service,
the Quix Streams comparator). A caller that needs a DataFrame makes one at its boundary
(:func:`frame`).

Nothing here imports pandas: the helpers work on any array that has the methods they call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Column name → array (numpy, a pandas nullable array, or a Series when the rows are a DataFrame).
Columns = Mapping[str, Any]
#: Up to this many values, a kernel hashes (ids, codes, dimension keys) in plain Python: a call for
#: one event would otherwise pay pandas' fixed cost per call, which is far larger.
SMALL = 256


def array(column: Any) -> Any:
    """A column's array: a Series' own (nullable) array, anything else as it is."""
    return column.array if hasattr(column, "array") and hasattr(column, "index") else column


def ints(column: Any) -> np.ndarray:
    """A column without nulls as int64."""
    return np.asarray(array(column), np.int64)


def objects(column: Any) -> np.ndarray:
    """A column as an object array (strings, None)."""
    return np.asarray(array(column), object)


def size(columns: Columns) -> int:
    """How many rows ``columns`` hold."""
    if hasattr(columns, "index"):  # a DataFrame
        return len(columns.index)
    return len(next(iter(columns.values()))) if columns else 0


def frame(columns: Columns, index: Any = None):
    """``columns`` as a DataFrame (a DataFrame stays as it is)."""
    import pandas as pd

    return columns if isinstance(columns, pd.DataFrame) else pd.DataFrame(dict(columns), index=index)


def concat(parts: Sequence[Columns]) -> Columns:
    """Rows of several ``parts`` (the same columns, as arrays) one after the other; one part as it is."""
    if len(parts) == 1:
        return parts[0]
    out = {}
    for name, first in parts[0].items():
        pieces = [part[name] for part in parts]
        if isinstance(first, np.ndarray):
            out[name] = np.concatenate(pieces)
        else:  # a pandas nullable array
            out[name] = type(first)._concat_same_type(pieces)
    return out
