"""The data contract, declared once: the fields of every Kafka stream.

Producer records (:data:`TransactionRecord` ...), Spark schemas (:func:`spark_schema`), Arrow
schemas for the simulator's files (:func:`arrow_schema`), validation (which fields are required)
and the docs all derive from the tuples below. Field names follow the original data model
(``transaction_stream``, ``user_info_stream``, ``merchant_info_stream``); additions are marked.

``is_fraud`` and ``fraud_scenario`` are ground truth: stored for training labels and evaluation,
never a feature of the transaction they belong to (:data:`LABEL_FIELDS`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql.types import StructType


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # string | double | int | boolean | timestamp | date
    required: bool
    doc: str


TRANSACTION_FIELDS: tuple[Field, ...] = (
    Field("transaction_id", "string", True, "Unique transaction id."),
    Field("user_id", "string", True, "The paying user; also the Kafka key, so one user's events stay in order."),
    Field("merchant_id", "string", True, "The merchant paid."),
    Field("timestamp", "timestamp", True, "Event time, ISO 8601 UTC (e.g. 2026-11-01T13:45:12.123Z)."),
    Field("amount", "double", True, "Amount in `currency`, > 0."),
    Field("currency", "string", True, "ISO 4217 code, one of the configured currencies."),
    Field("device_ip", "string", False, "IPv4/IPv6 address of the paying device; may be absent (imports)."),
    Field("is_fraud", "boolean", False, "Ground-truth label (never a feature)."),
    Field("fraud_scenario", "string", False, "Ground truth: which fraud pattern, null when legitimate (added)."),
)

USER_FIELDS: tuple[Field, ...] = (
    Field("user_id", "string", True, "Unique user id."),
    Field("age", "int", False, "Age in years at signup."),
    Field("gender", "string", False, "F, M or X."),
    Field("location", "string", False, "Home city, 'City, CC'."),
    Field("latitude", "double", False, "Home latitude (added: the seed's location as coordinates)."),
    Field("longitude", "double", False, "Home longitude (added)."),
    Field("signup_date", "date", False, "Registration date, YYYY-MM-DD."),
    Field("updated_at", "timestamp", True, "When this version of the profile took effect (added: latest wins)."),
)

MERCHANT_FIELDS: tuple[Field, ...] = (
    Field("merchant_id", "string", True, "Unique merchant id."),
    Field("name", "string", False, "Trading name."),
    Field("category", "string", False, "Business category (grocery, electronics, ...)."),
    Field("location", "string", False, "City, 'City, CC'."),
    Field("latitude", "double", False, "Latitude (added)."),
    Field("longitude", "double", False, "Longitude (added)."),
    Field("created_at", "timestamp", False, "Onboarding time."),
    Field("updated_at", "timestamp", True, "When this version of the record took effect (added: latest wins)."),
)

#: A label event on ``fraud_labels``: a payment's label as someone reported it, late (a chargeback,
#: a customer's report, an analyst's decision). A later event for the same payment supersedes it.
LABEL_EVENT_FIELDS: tuple[Field, ...] = (
    Field("label_id", "string", True, "Unique id of this label event (a repeat is a duplicate)."),
    Field("transaction_id", "string", True, "The labelled payment."),
    Field("user_id", "string", True, "The payment's user; also the Kafka key."),
    Field("label", "string", True, "fraud or legitimate."),
    Field("source", "string", True, "chargeback, customer_report or analyst."),
    Field("reported_at", "timestamp", True, "When the label became known, ISO 8601 UTC."),
    Field("analyst", "string", False, "Who decided (source analyst)."),
    Field("note", "string", False, "Free text."),
)
LABEL_VALUES: tuple[str, ...] = ("fraud", "legitimate")
LABEL_SOURCES: tuple[str, ...] = ("chargeback", "customer_report", "analyst")

LABEL_FIELDS: frozenset[str] = frozenset({"is_fraud", "fraud_scenario"})
#: Fields that identify an entity: ingest accepts only non-blank scalar text for them (``bad_id``).
IDENTIFIERS: frozenset[str] = frozenset({"transaction_id", "user_id", "merchant_id", "label_id"})

STREAMS: dict[str, tuple[Field, ...]] = {
    "transactions": TRANSACTION_FIELDS,
    "users": USER_FIELDS,
    "merchants": MERCHANT_FIELDS,
    "labels": LABEL_EVENT_FIELDS,
}
#: The key of each stream's Kafka records.
STREAM_KEYS: dict[str, str] = {
    "transactions": "user_id",
    "users": "user_id",
    "merchants": "merchant_id",
    "labels": "user_id",
}
#: Streams whose records are versions of something: stream → (what they are versions of, the field
#: that orders them). Silver keeps every version and, per key, the latest (a later one supersedes).
LATEST_BY: dict[str, tuple[str, str]] = {
    "users": ("user_id", "updated_at"),
    "merchants": ("merchant_id", "updated_at"),
    "labels": ("transaction_id", "reported_at"),
}
#: Streams whose records are events with their own id: a repeated id is a ``duplicate``.
EVENT_IDS: dict[str, str] = {"transactions": "transaction_id", "labels": "label_id"}


def field_names(fields: tuple[Field, ...]) -> list[str]:
    return [f.name for f in fields]


def required_names(fields: tuple[Field, ...]) -> list[str]:
    return [f.name for f in fields if f.required]


_PY_TYPES: dict[str, Any] = {
    "string": str,
    "double": float,
    "int": int,
    "boolean": bool,
    "timestamp": str,  # ISO 8601 text on the wire
    "date": str,
}


def _record_type(name: str, fields: tuple[Field, ...]) -> type:
    return TypedDict(name, {f.name: _PY_TYPES[f.kind] | None for f in fields})  # type: ignore[operator]


#: The producer's record types: what one JSON value on each topic holds.
TransactionRecord = _record_type("TransactionRecord", TRANSACTION_FIELDS)
UserRecord = _record_type("UserRecord", USER_FIELDS)
MerchantRecord = _record_type("MerchantRecord", MERCHANT_FIELDS)


def spark_schema(fields: tuple[Field, ...], *, wire: bool = False) -> StructType:
    """The Spark schema of a stream. ``wire=True`` reads timestamps and dates as strings (JSON text),
    so that a malformed one can be told apart from a missing one."""
    from pyspark.sql import types as T

    kinds = {
        "string": T.StringType(),
        "double": T.DoubleType(),
        "int": T.IntegerType(),
        "boolean": T.BooleanType(),
        "timestamp": T.StringType() if wire else T.TimestampType(),
        "date": T.StringType() if wire else T.DateType(),
    }
    return T.StructType([T.StructField(f.name, kinds[f.kind], nullable=True) for f in fields])


def arrow_schema(fields: tuple[Field, ...]) -> pa.Schema:
    import pyarrow as pa

    kinds = {
        "string": pa.string(),
        "double": pa.float64(),
        "int": pa.int32(),
        "boolean": pa.bool_(),
        "timestamp": pa.timestamp("ms", tz="UTC"),
        "date": pa.date32(),
    }
    return pa.schema([pa.field(f.name, kinds[f.kind], nullable=not f.required) for f in fields])
