"""``fraudlake sql``: run Spark SQL over the catalog and render the result (table, CSV or JSON).

Read-only unless asked: every table is managed, so a ``DROP`` deletes data and history, and a
``DELETE`` in bronze breaks the silver stream. :func:`run_sql` parses the statement first (parsing
runs nothing) and refuses one that could change the lakehouse unless ``write`` is set. What counts
as reading is an allow-list on the parsed plan's root: a query (not a command, and none of the
statements below that write without being commands), ``SHOW …``, ``DESCRIBE …`` and ``EXPLAIN``.
Anything else (DDL, DML, ``SET``, ``CACHE``, ``EXECUTE IMMEDIATE``, a statement Spark adds
later) counts as a write. This guards against a mistake at the prompt; it is not an access control:
whoever runs the CLI can reach the warehouse's files, and the catalog's own permissions are the
boundary on a shared deployment.
"""

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


#: Parsed plans that write although they are not Spark ``Command`` nodes.
_WRITES_THAT_ARE_NOT_COMMANDS = frozenset({"InsertIntoDir", "Call", "UnresolvedExecuteImmediate"})


def statement_writes(spark: SparkSession, statement: str) -> str | None:
    """The parsed plan's root (``DropTable``) when ``statement`` may change anything, else None.

    A statement Spark cannot parse is None: :func:`run_sql` then reports Spark's own parse error.
    """
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import ParseException

    # The parser is reachable only through the JVM session; parsing runs nothing.
    jvm = spark._jvm
    try:
        plan = spark._jsparkSession.sessionState().sqlParser().parsePlan(statement)
    except (ParseException, Py4JJavaError):
        return None
    name = plan.nodeName()
    if name.startswith(("Show", "Describe")) or name == "ExplainCommand":
        return None
    command = jvm.java.lang.Class.forName("org.apache.spark.sql.catalyst.plans.logical.Command")
    if command.isInstance(plan) or name.endswith("Statement") or name in _WRITES_THAT_ARE_NOT_COMMANDS:
        return name
    return None


def run_sql(spark: SparkSession, statement: str, *, write: bool = False) -> DataFrame:
    """Run one statement; a statement Spark rejects becomes a one-line :class:`SqlError`, and so does
    one that may change the lakehouse (see the module's notes) unless ``write``."""
    from pyspark.errors import AnalysisException, ParseException

    if not write and (plan := statement_writes(spark, statement)) is not None:
        raise SqlError(
            f"SQL: {statement.split(None, 1)[0].upper()} … ({plan}) may change the lakehouse, and fraudlake sql "
            "is read-only; give --write to run it (tables are managed: DROP deletes their data and history)"
        )
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
