"""The features of a transaction, declared once: names, types, windows and meaning.

The offline job (:mod:`lakehouse.features.offline`), the streaming scorer's online path
(:mod:`lakehouse.features.online`), training, the feature check and the docs all read
:data:`FEATURES`. Every feature is computed from what the platform knew at the transaction's
event time:

- *known at t* means: another transaction of the same user that happened at or before t **and**
  reached the platform before this one (earlier Kafka offset of the user's partition). An
  out-of-order transaction that arrives later does not change the features of one scored
  before it, offline or online: training sees exactly what the scorer saw.
- label-derived features (``merchant_fraud_rate_*``) only count labels of transactions on days
  that ended at least ``features.feedback_delay_days`` before the transaction's day, and, with
  label events, only labels reported within that delay (:mod:`lakehouse.features.labels`): every
  label they count was known before the transaction's day began.
- a transaction's own label (``is_fraud``, ``fraud_scenario``) is never an input.

Features come from three places, marked by ``source``:

- ``event``: the transaction itself (``amount``, a column the feature table carries anyway);
- ``state``: the user's recent history (:mod:`lakehouse.features.history`, pure Python shared by
  both paths: offline it replays each user's transactions, online it runs inside Spark's
  stateful operator);
- ``tables``: point-in-time joins with the user and merchant versions and the merchant daily
  statistics (:func:`lakehouse.features.offline.enrich`, one Spark function used by both paths).
"""

from __future__ import annotations

from dataclasses import dataclass

HOUR_S = 3600
DAY_S = 24 * HOUR_S

#: User history windows, longest last; the longest is how much history the state keeps.
USER_WINDOWS: dict[str, int] = {"1h": HOUR_S, "24h": DAY_S, "7d": 7 * DAY_S, "30d": 30 * DAY_S}
#: Windows of the distinct merchant / device IP counts.
DISTINCT_WINDOWS: tuple[str, ...] = ("24h", "7d")
#: Merchant count windows, in whole days before the transaction's day.
MERCHANT_DAY_WINDOWS: dict[str, int] = {"1d": 1, "7d": 7, "30d": 30}
#: Merchant fraud-risk windows, in whole days ending ``features.feedback_delay_days`` before the
#: transaction's day (the fraud-detection literature's terminal risk over 1, 7 and 30 days).
MERCHANT_RISK_WINDOWS: dict[str, int] = {"1d": 1, "7d": 7, "30d": 30}
#: History the online state must keep for every window: the longest window.
HISTORY_S = max(USER_WINDOWS.values())


@dataclass(frozen=True)
class Feature:
    name: str
    kind: str  # double | long | int | string
    source: str  # state | tables
    doc: str
    categorical: bool = False


def _user_window_features() -> list[Feature]:
    out: list[Feature] = []
    for w in USER_WINDOWS:
        out += [
            Feature(
                f"user_tx_count_{w}", "long", "state", f"The user's transactions known in the {w} before this one."
            ),
            Feature(
                f"user_amount_sum_{w}",
                "double",
                "state",
                f"Sum of their amounts over the {w} (in their own currencies).",
            ),
            Feature(f"user_amount_mean_{w}", "double", "state", f"Mean amount over the {w}; null without history."),
        ]
    for w in DISTINCT_WINDOWS:
        out += [
            Feature(
                f"user_distinct_merchants_{w}", "long", "state", f"Distinct merchants the user paid in the {w} before."
            ),
            Feature(
                f"user_distinct_ips_{w}", "long", "state", f"Distinct device IPs the user paid from in the {w} before."
            ),
        ]
    return out


def _merchant_features() -> list[Feature]:
    out = [
        Feature(
            f"merchant_tx_count_{w}",
            "long",
            "tables",
            "The merchant's transactions on the day before this transaction's day."
            if days == 1
            else f"The merchant's transactions in the {days} days before this transaction's day.",
        )
        for w, days in MERCHANT_DAY_WINDOWS.items()
    ]
    out += [
        Feature(
            f"merchant_fraud_rate_{w}",
            "double",
            "tables",
            f"Share of fraud among the merchant's transactions over {'the day' if days == 1 else f'the {days} days'} "
            "ending feedback_delay_days before this transaction's day, counting a fraud only if its label was "
            "reported within feedback_delay_days of its day (labels.source); null without transactions.",
        )
        for w, days in MERCHANT_RISK_WINDOWS.items()
    ]
    return out


FEATURES: tuple[Feature, ...] = (
    Feature("amount", "double", "event", "The payment's amount, in its own currency, as the transaction carries it."),
    *_user_window_features(),
    Feature(
        "user_amount_ratio_30d", "double", "state", "Amount / the user's 30-day mean amount; null without history."
    ),
    Feature(
        "user_amount_zscore_30d",
        "double",
        "state",
        "(amount - 30-day mean) / 30-day sample std; null under 2 transactions or zero spread.",
    ),
    Feature(
        "seconds_since_prev_tx",
        "double",
        "state",
        "Seconds since the user's previous known transaction (within 30 days), else null.",
    ),
    Feature(
        "is_new_device_ip",
        "int",
        "state",
        "1 when the device IP was not seen for this user in the last 30 days, 0 when it was; null without an IP.",
    ),
    Feature(
        "home_distance_km",
        "double",
        "tables",
        "Great-circle distance from the user's home (profile as of the event) to the merchant; null for online "
        "merchants.",
    ),
    Feature(
        "prev_distance_km",
        "double",
        "tables",
        "Distance from the previous transaction's merchant to this one; null if either has no location.",
    ),
    Feature(
        "prev_speed_kmh",
        "double",
        "tables",
        "prev_distance_km over the time since that transaction (at least one minute).",
    ),
    *_merchant_features(),
    Feature("hour_of_day", "int", "tables", "Hour of the event (UTC), 0-23."),
    Feature("is_night", "int", "tables", "1 between 00:00 and 05:59 UTC."),
    Feature("is_weekend", "int", "tables", "1 on Saturday and Sunday (UTC)."),
    Feature("user_age_years", "double", "tables", "The user's age at the event: age at signup plus the years since."),
    Feature("account_age_days", "double", "tables", "Days since the user's signup date (UTC midnight) at the event."),
    Feature(
        "merchant_category", "string", "tables", "The merchant's business category (as of the event).", categorical=True
    ),
)

FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
STATE_FEATURES: tuple[Feature, ...] = tuple(f for f in FEATURES if f.source == "state")
NUMERIC_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if not f.categorical)
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(f.name for f in FEATURES if f.categorical)
#: Columns the state adds besides features: what the table joins need about the previous transaction.
PREVIOUS_COLUMNS: tuple[tuple[str, str], ...] = (("prev_merchant_id", "string"), ("prev_time_us", "long"))
#: Never features (ground truth), kept next to them for training and evaluation.
LABEL_COLUMNS: tuple[str, ...] = ("is_fraud", "fraud_scenario")

SQL_TYPES = {"double": "DOUBLE", "long": "BIGINT", "int": "INT", "string": "STRING"}

#: The transaction columns carried from silver into the feature table (besides features and labels).
CARRIED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("transaction_id", "STRING"),
    ("user_id", "STRING"),
    ("merchant_id", "STRING"),
    ("event_time", "TIMESTAMP"),
    ("event_date", "DATE"),
    ("amount", "DOUBLE"),
    ("currency", "STRING"),
    ("device_ip", "STRING"),
)
#: Kafka coordinates: the arrival order within a partition (see offline.SILVER_ARRIVAL) and the trace back to bronze.
# (Not "_partition": pandas UDFs rename columns that start with an underscore.)
ARRIVAL_COLUMNS: tuple[tuple[str, str], ...] = (("kafka_partition", "INT"), ("kafka_offset", "BIGINT"))
LABEL_TYPES = {"is_fraud": "BOOLEAN", "fraud_scenario": "STRING"}


def feature_table_columns() -> list[str]:
    """Column order of ``gold.transaction_features``."""
    carried = [c for c, _ in CARRIED_COLUMNS]
    return (
        carried
        + [f.name for f in FEATURES if f.name not in carried]  # amount: carried, and a feature
        + list(LABEL_COLUMNS)
        + [c for c, _ in ARRIVAL_COLUMNS]
    )


def feature_table_types() -> dict[str, str]:
    """SQL type of every column of ``gold.transaction_features``."""
    return dict(CARRIED_COLUMNS) | dict(ARRIVAL_COLUMNS) | LABEL_TYPES | {f.name: SQL_TYPES[f.kind] for f in FEATURES}


def feature(name: str) -> Feature:
    for f in FEATURES:
        if f.name == name:
            return f
    raise KeyError(f"unknown feature {name!r}; known: {', '.join(FEATURE_NAMES)}")


def markdown_table() -> str:
    """The feature catalogue as a Markdown table (for the docs)."""
    lines = ["| feature | type | from | meaning |", "|---|---|---|---|"]
    lines += [f"| `{f.name}` | {f.kind} | {f.source} | {f.doc} |" for f in FEATURES]
    return "\n".join(lines)
