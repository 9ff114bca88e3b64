"""``fraudlake sql``: run Spark SQL over the catalog and render the result (table, CSV or JSON)."""

from __future__ import annotations

import csv
import json
import sys
from datetime import date, datetime
from decimal import Decimal
from typing import IO, TYPE_CHECKING

from lakehouse.errors import FraudlakeError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


class SqlError(FraudlakeError):
    exit_code = 2


def run_sql(spark: SparkSession, statement: str) -> DataFrame:
    """Run one statement; a statement Spark rejects becomes a one-line :class:`SqlError`."""
    from pyspark.errors import AnalysisException, ParseException

    try:
        return spark.sql(statement)
    except (AnalysisException, ParseException) as exc:
        first_line = str(exc).strip().splitlines()[0]
        raise SqlError(f"SQL: {first_line}") from None


def _plain(value: object) -> object:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def write_rows(df: DataFrame, fmt: str, out: IO[str] | None = None, limit: int | None = None) -> int:
    """Write the result as csv or json lines; returns the number of rows written."""
    out = out or sys.stdout
    rows = df.limit(limit).toLocalIterator() if limit else df.toLocalIterator()
    count = 0
    if fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(df.columns)
        for row in rows:
            writer.writerow([_plain(v) for v in row])
            count += 1
    elif fmt == "json":
        for row in rows:
            out.write(json.dumps({k: _plain(v) for k, v in row.asDict(recursive=True).items()}, default=str) + "\n")
            count += 1
    else:
        raise SqlError(f"unknown output format {fmt!r} (table, csv, json)")
    return count
