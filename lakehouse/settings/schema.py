"""The typed schema of the configuration: one frozen pydantic model per section of ``conf/base.yaml``,
with the documented bounds and the paths derived from ``paths.data_dir``.

One cohesive module on purpose, although it passes 400 lines: it mirrors ``conf/base.yaml``
section by section, so a key is found in the same place in both, and the sections refer to each
other (``Settings`` at the end holds them all). It holds declarations only, no logic beyond
validators; loading is in :mod:`lakehouse.settings.loading`.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathsSettings(_Section):
    data_dir: Path = Field(description="Root of all runtime state: broker data, warehouse, checkpoints, logs.")


class TopicSettings(_Section):
    name: str = Field(min_length=1)
    partitions: int = Field(ge=1)
    replication_factor: int = Field(ge=1)
    retention_ms: int = Field(ge=-1, description="-1 keeps records forever.")
    configs: dict[str, str] = Field(default_factory=dict, description="Other topic configs at creation, verbatim.")


class TopicsSettings(_Section):
    transactions: TopicSettings
    users: TopicSettings
    merchants: TopicSettings
    alerts: TopicSettings
    scored: TopicSettings
    labels: TopicSettings

    def all(self) -> list[TopicSettings]:
        return [self.transactions, self.users, self.merchants, self.alerts, self.scored, self.labels]


class EmbeddedBrokerSettings(_Section):
    """The single-node KRaft broker that ``fraudlake kafka up`` runs as its own JVM."""

    enabled: bool
    host: str
    port: int = Field(ge=1, le=65535)
    controller_port: int = Field(ge=1, le=65535)
    node_id: int = Field(ge=0)
    heap: str = Field(pattern=r"^\d+[kmgKMG]$")
    jars_dir: Path
    log4j_config: Path
    data_dir: Path | None = Field(default=None, description="Default: <paths.data_dir>/kafka.")
    start_timeout_s: float = Field(gt=0)
    stop_timeout_s: float = Field(gt=0)
    properties: dict[str, str] = Field(default_factory=dict, description="Extra server.properties.")
    secure: bool = Field(
        default=False,
        description=(
            "A SASL_SSL listener (SCRAM-SHA-512 over TLS with a locally made CA) with ACLs, instead of"
            " PLAINTEXT; the app's SCRAM user is kafka.sasl_username (conf/secure.yaml)."
        ),
    )
    alerts_reader: str | None = Field(
        default=None,
        description=(
            "Secured broker: a SCRAM user that may only read the alerts topic (and its own consumer"
            " groups). Null: none."
        ),
    )
    alerts_reader_password: SecretStr | None = Field(
        default=None, description="The alerts reader's password (FRAUDLAKE_KAFKA__BROKER__ALERTS_READER_PASSWORD)."
    )

    @model_validator(mode="after")
    def _distinct_ports(self) -> EmbeddedBrokerSettings:
        if self.port == self.controller_port:
            raise ValueError("port and controller_port must differ")
        return self


class KafkaSettings(_Section):
    bootstrap_servers: str | None = Field(
        default=None, description="host:port[,host:port]; empty means the embedded broker."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: SecretStr | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = Field(
        default=None,
        description=(
            "PEM file of the CA(s) to trust for TLS (SSL, SASL_SSL); null: the system's trust store."
            " The secured local broker's CA is <broker data dir>/tls/ca.pem."
        ),
    )
    ssl_check_hostname: bool = Field(default=True, description="Check the broker's certificate names its host.")
    client_id: str
    request_timeout_ms: int = Field(ge=1000)
    connect_timeout_s: float = Field(gt=0, description="How long a command waits for the broker.")
    consumer_session_timeout_ms: int = Field(
        default=10000,
        ge=1000,
        description=(
            "How long the broker waits for a silent group member (a killed `alerts tail`) before its partitions"
            " move to another member; the broker accepts 6000 to 1800000 (group.min/max.session.timeout.ms)."
        ),
    )
    broker: EmbeddedBrokerSettings
    topics: TopicsSettings

    @property
    def bootstrap(self) -> str:
        """The address clients connect to."""
        return self.bootstrap_servers or f"{self.broker.host}:{self.broker.port}"

    @model_validator(mode="after")
    def _sasl_complete(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL_"):
            missing = [k for k in ("sasl_mechanism", "sasl_username", "sasl_password") if getattr(self, k) is None]
            if missing:
                raise ValueError(
                    f"security_protocol {self.security_protocol} needs {', '.join(missing)} "
                    f"(credentials from FRAUDLAKE_KAFKA__SASL_USERNAME / FRAUDLAKE_KAFKA__SASL_PASSWORD)"
                )
        return self


class CatalogServerSettings(_Section):
    """The Derby network server that `fraudlake catalog up` runs (catalog: derby-server)."""

    enabled: bool = Field(description="Run it locally; false when another host serves it (cluster).")
    host: str
    port: int = Field(ge=1, le=65535)
    heap: str = Field(pattern=r"^\d+[kmgKMG]$")
    jars_dir: Path
    start_timeout_s: float = Field(gt=0)
    stop_timeout_s: float = Field(gt=0)


class LocalClusterSettings(_Section):
    """The multi-process cluster on loopback that ``fraudlake cluster up`` runs: a Spark standalone
    master with its workers, and a multi-node KRaft Kafka (every node broker and controller). The
    ``cluster-local`` overlay points the jobs at it; a worker's or a broker's ports are the first
    ones plus its index."""

    host: str
    spark_master_port: int = Field(ge=1, le=65535)
    spark_master_webui_port: int = Field(ge=1, le=65535)
    spark_workers: int = Field(ge=1, le=8)
    spark_worker_cores: int = Field(ge=1)
    spark_worker_memory: str = Field(pattern=r"^\d+[kmgKMG]$", description="What a worker offers its executors.")
    spark_worker_port: int = Field(ge=1, le=65535, description="The first worker's RPC port.")
    spark_worker_webui_port: int = Field(ge=1, le=65535, description="The first worker's UI (and JSON) port.")
    spark_daemon_memory: str = Field(pattern=r"^\d+[kmgKMG]$", description="The heap of the master and of a worker.")
    kafka_brokers: int = Field(ge=1, le=9)
    kafka_port: int = Field(ge=1, le=65535, description="The first broker's client port.")
    kafka_controller_port: int = Field(ge=1, le=65535, description="The first broker's controller port.")
    kafka_heap: str = Field(pattern=r"^\d+[kmgKMG]$")
    data_dir: Path | None = Field(default=None, description="Default: <paths.data_dir>/cluster.")
    start_timeout_s: float = Field(gt=0)
    stop_timeout_s: float = Field(gt=0)

    @model_validator(mode="after")
    def _ports_apart(self) -> LocalClusterSettings:
        ranges = {
            "spark_master_port": (self.spark_master_port, 1),
            "spark_master_webui_port": (self.spark_master_webui_port, 1),
            "spark_worker_port": (self.spark_worker_port, self.spark_workers),
            "spark_worker_webui_port": (self.spark_worker_webui_port, self.spark_workers),
            "kafka_port": (self.kafka_port, self.kafka_brokers),
            "kafka_controller_port": (self.kafka_controller_port, self.kafka_brokers),
        }
        taken: dict[int, str] = {}
        for key, (first, count) in ranges.items():
            for port in range(first, first + count):
                if port in taken:
                    raise ValueError(f"{key} and {taken[port]} both use port {port} (a range is first port + index)")
                taken[port] = key
        return self


class SparkSettings(_Section):
    master: str
    app_name: str
    local_ip: str | None = Field(default=None, description="SPARK_LOCAL_IP for a local driver.")
    driver_memory: str = Field(pattern=r"^\d+[kmgKMG]$")
    driver_java_options: list[str] = Field(
        default_factory=list, description="Extra JVM options of the driver (e.g. GC flags), after Fraudlake's own."
    )
    shuffle_partitions: int = Field(ge=1)
    ui_enabled: bool
    jars_dir: Path | None = Field(default=None, description="Jars put on spark.jars (Delta, Kafka connector).")
    log4j_config: Path | None = None
    class_archive_dir: Path | None = Field(
        default=None, description="Where the driver's class-data archive lives (made by `make setup`); null: none."
    )
    warehouse_dir: str | None = Field(default=None, description="Default: <paths.data_dir>/warehouse.")
    catalog: Literal["derby-server", "derby", "hive-metastore", "in-memory"] = Field(
        description="derby-server: shared local catalog (fraudlake catalog up); derby: embedded, one process."
    )
    catalog_server: CatalogServerSettings
    metastore_dir: Path | None = Field(default=None, description="Derby folder; default <data_dir>/metastore.")
    metastore_uri: str | None = Field(default=None, description="thrift:// URI when catalog is hive-metastore.")
    checkpoint_dir: str | None = Field(default=None, description="Default: <paths.data_dir>/checkpoints.")
    conf: dict[str, str] = Field(default_factory=dict, description="Any other Spark setting, verbatim.")

    @model_validator(mode="after")
    def _metastore_uri_needed(self) -> SparkSettings:
        if self.catalog == "hive-metastore" and not self.metastore_uri:
            raise ValueError("catalog hive-metastore needs metastore_uri")
        return self


class DataContractSettings(_Section):
    """What a valid record looks like beyond its schema (shared by the simulator and validation)."""

    currencies: list[str] = Field(min_length=1, description="Accepted ISO 4217 codes.")
    max_amount: float = Field(gt=0, description="Amounts above this are absurd and quarantined.")
    time_range: tuple[date, date] = Field(
        description=(
            "[from, until): every date and time field must lie within, or the record is quarantined"
            " (out_of_range:<field>). Within what every engine on the path holds (pandas: 1677-2262,"
            " Python: years 1-9999), so no single record can stop a stream or a build."
        )
    )
    max_ahead_minutes: float = Field(
        gt=0,
        description=(
            "A record's time may lie at most this far after its Kafka timestamp (or its import's time),"
            " or it is quarantined (future_time:<field>): one record dated ahead would otherwise make"
            " every later record of its partition late."
        ),
    )

    @model_validator(mode="after")
    def _time_range_ordered(self) -> DataContractSettings:
        start, end = self.time_range
        if not (date(1678, 1, 1) <= start < end <= date(2262, 1, 1)):
            raise ValueError("time_range must be [from, until) with 1678-01-01 <= from < until <= 2262-01-01")
        return self


Range = tuple[float, float]


class _Scenario(_Section):
    share: float = Field(ge=0, le=1, description="Share of all fraud transactions from this scenario.")


class CardTestingSettings(_Scenario):
    burst: tuple[int, int] = Field(description="Transactions per burst (min, max).")
    amount: Range = Field(description="Tiny amounts (min, max).")
    gap_seconds: Range = Field(description="Time between attempts (min, max).")
    fraudster_ip_probability: float = Field(ge=0, le=1)


class AccountTakeoverSettings(_Scenario):
    transactions: tuple[int, int]
    amount_multiplier: Range = Field(description="Times the user's typical amount for the category.")
    min_distance_km: float = Field(gt=0)
    window_hours: Range


class CompromisedMerchantSettings(_Scenario):
    duration_days: int = Field(ge=1, description="How long one merchant stays compromised.")
    fraud_per_merchant_day: float = Field(gt=0, description="Fraudulent transactions per compromised merchant-day.")
    amount_multiplier: Range


class StolenCardSpreeSettings(_Scenario):
    transactions: tuple[int, int]
    window_minutes: Range
    amount_multiplier: Range


class AmountAnomalySettings(_Scenario):
    amount_multiplier: Range


class ImpossibleTravelSettings(_Scenario):
    gap_minutes: Range = Field(description="Minutes between the genuine payment at home and the far one.")
    min_distance_km: float = Field(gt=0)
    amount_multiplier: Range


class ScenariosSettings(_Section):
    card_testing: CardTestingSettings
    account_takeover: AccountTakeoverSettings
    compromised_merchant: CompromisedMerchantSettings
    stolen_card_spree: StolenCardSpreeSettings
    amount_anomaly: AmountAnomalySettings
    impossible_travel: ImpossibleTravelSettings

    def shares(self) -> dict[str, float]:
        return {name: getattr(self, name).share for name in type(self).model_fields}

    @model_validator(mode="after")
    def _shares_sum_to_one(self) -> ScenariosSettings:
        total = sum(self.shares().values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"scenario shares must add up to 1 (they add up to {total:g})")
        return self


class BadRecordsSettings(_Section):
    late_by_hours: float = Field(gt=0, description="How far behind the stream a late event is stamped.")
    out_of_order_minutes: float = Field(gt=0, description="How far back an out-of-order (still accepted) event is.")


class LabelsSettings(_Section):
    """When and how a payment's label becomes known (``fraud_labels``): most frauds are reported
    late, by chargeback (weeks) or by the customer (days); some never are; a few legitimate
    payments are claimed as fraud."""

    fraud_reported: float = Field(ge=0, le=1, description="Share of frauds ever reported; the rest is never known.")
    chargeback_share: float = Field(ge=0, le=1, description="Reports that are chargebacks; the rest from customers.")
    chargeback_days_median: float = Field(gt=0, description="Median days from a payment to its chargeback.")
    report_days_median: float = Field(gt=0, description="Median days from a payment to the customer's report.")
    delay_sigma: float = Field(gt=0, le=3, description="Spread of the delays (sigma of their logarithm, lognormal).")
    max_delay_days: float = Field(gt=0, description="No report comes later than this.")
    false_claim_rate: float = Field(ge=0, le=0.1, description="Legitimate payments claimed as fraud.")
    emit: bool = Field(default=False, description="`produce` sends them on the labels topic.")


class SimulatorSettings(_Section):
    seed: int = Field(description="Seeds users, merchants and (for simulate) the traffic.")
    users: int = Field(ge=10)
    merchants: int = Field(ge=10)
    cities: int = Field(ge=2)
    days: int = Field(ge=1, description="Span of the offline batch.")
    start: date | None = Field(
        default=None,
        description="First day of the offline batch (UTC); null: `days` + `live_days` before today.",
    )
    live_days: int = Field(
        default=60,
        ge=0,
        description=(
            "Simulated days kept between the offline batch and today for live traffic, which runs"
            " faster than the clock: the producer stops when its simulated time reaches the wall clock."
        ),
    )
    transactions: int = Field(ge=1, description="Transactions in the offline batch, fraud included.")
    fraud_rate: float = Field(ge=0, le=0.5)
    new_user_share: float = Field(ge=0, le=0.5, description="Users who sign up during the span.")
    profile_change_probability: float = Field(ge=0, le=1, description="Users who move house during the span.")
    travel_probability: float = Field(ge=0, le=1, description="Users who take a trip during the span.")
    online_share: float = Field(ge=0, le=1, description="Share of payments at online merchants.")
    favourite_share: float = Field(ge=0, le=1, description="Share of home payments at the user's regulars.")
    scenarios: ScenariosSettings
    bad_records: BadRecordsSettings
    labels: LabelsSettings


class ProducerSettings(_Section):
    client: Literal["confluent", "kafka-python"] = Field(
        description="Kafka client used by `fraudlake produce`: confluent (librdkafka, fast) or kafka-python."
    )
    linger_ms: int = Field(ge=0)
    batch_bytes: int = Field(ge=1024)
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"]
    max_retries: int = Field(ge=0, description="Resends of a record whose delivery failed.")
    chunk_hours: float = Field(gt=0, description="Simulated hours generated per chunk.")


class SchemasSettings(_Section):
    """Catalog schema (database) names of the medallion layers."""

    bronze: str = Field(pattern=r"^[a-z_][a-z0-9_]*$")
    silver: str = Field(pattern=r"^[a-z_][a-z0-9_]*$")
    gold: str = Field(pattern=r"^[a-z_][a-z0-9_]*$")


class LakehouseSettings(_Section):
    schemas: SchemasSettings
    watermark_delay_minutes: float = Field(
        gt=0, description="A transaction older than its partition's latest event time minus this is late."
    )
    dedup_window_hours: float = Field(gt=0, description="How far back a transaction_id is checked for duplicates.")
    history_retention_hours: float = Field(
        gt=0, description="Time travel window: VACUUM never removes files younger than this."
    )
    poison_after_failures: int = Field(
        default=3,
        ge=1,
        description=(
            "A silver micro-batch that has failed this many times is searched for records that fail"
            " on their own; those go to quarantine (poison_record:<error>) and the rest lands."
        ),
    )

    progress_compact_every: int = Field(
        default=100,
        ge=1,
        description=(
            "Every this many micro-batches, the transactions query folds the ingest_progress rows of its"
            " earlier batches into one row per Kafka partition (their latest event time and offset), so"
            " the table and the read of it each batch stay bounded."
        ),
    )

    @model_validator(mode="after")
    def _dedup_covers_lateness(self) -> LakehouseSettings:
        # A duplicate older than the dedup window must already be late, or it would slip through.
        if self.dedup_window_hours * 60 < self.watermark_delay_minutes:
            raise ValueError("dedup_window_hours must cover watermark_delay_minutes")
        return self


class QuerySettings(_Section):
    trigger: str | None = Field(default=None, description='"availableNow" or an interval such as "5 seconds".')
    max_records_per_trigger: int | None = Field(default=None, ge=1)
    max_files_per_trigger: int | None = Field(
        default=None, ge=1, description="Queries reading a Delta table (silver_*): files per micro-batch (1000)."
    )
    checkpoint: str | None = Field(default=None, description="Default: <checkpoint_dir>/<query name>.")


class StreamingSettings(_Section):
    trigger: str = Field(description='Default trigger of every query: "availableNow" or an interval.')
    max_records_per_trigger: int = Field(ge=1, description="Kafka offsets (or bronze rows) per micro-batch.")
    queries: dict[str, QuerySettings] = Field(default_factory=dict, description="Per-query overrides.")
    max_idle_s: float = Field(
        default=300,
        ge=0,
        description="`fraudlake stream status`: a query with records waiting whose last commit is older than this "
        "is stale.",
    )

    @model_validator(mode="after")
    def _triggers_valid(self) -> StreamingSettings:
        for name, trigger in [
            ("trigger", self.trigger),
            *((f"queries.{k}.trigger", q.trigger) for k, q in self.queries.items()),
        ]:
            if (
                trigger is not None
                and trigger != "availableNow"
                and not re.fullmatch(r"\d+(\.\d+)? (second|minute)s?", trigger)
            ):
                raise ValueError(f'{name}: {trigger!r} is neither "availableNow" nor an interval like "5 seconds"')
        return self


class FeaturesSettings(_Section):
    feedback_delay_days: int = Field(
        ge=0, description="Labels become known this late: a merchant's fraud rate only counts days at least this old."
    )
    max_history_events: int = Field(ge=1, description="Features see at most this many previous transactions of a user.")
    state_ttl_hours: float = Field(
        gt=0,
        description="Online state of a user idle this long (processing time) is dropped; keep it above the "
        "30-day window plus the lateness allowance, or returning users lose history the offline path keeps.",
    )
    tolerance: float = Field(gt=0, description="Relative tolerance of `fraudlake features check`.")


class LabelPolicySettings(_Section):
    """Which labels training, its quality gates and the label-based features see (see
    :mod:`lakehouse.features.labels`)."""

    source: Literal["auto", "inline", "stream"] = Field(
        description="inline: each transaction's own is_fraud; stream: the label events of fraud_labels as reported "
        "by each cut; auto: imported transactions inline, streamed ones from fraud_labels once it holds any event."
    )
    maturity_days: int = Field(
        ge=0,
        description="With stream labels, training validates on a window that ends this many days before its cut "
        "(labels of the last days are still coming).",
    )


class GbtSettings(_Section):
    max_iter: int = Field(ge=1)
    max_depth: int = Field(ge=1, le=30)
    step_size: float = Field(gt=0, le=1)
    subsampling_rate: float = Field(gt=0, le=1)


class RandomForestSettings(_Section):
    num_trees: int = Field(ge=1)
    max_depth: int = Field(ge=1, le=30)
    subsampling_rate: float = Field(gt=0, le=1)


class LogisticRegressionSettings(_Section):
    max_iter: int = Field(ge=1)
    reg_param: float = Field(ge=0)
    elastic_net_param: float = Field(ge=0, le=1)


class ThresholdSettings(_Section):
    target: Literal["alert_budget", "precision"] = Field(
        description="How the alert threshold is chosen on validation data."
    )
    daily_alerts: int = Field(
        ge=1, description="The investigators' daily alert budget (also k of the daily top-k precision)."
    )
    precision: float = Field(gt=0, le=1, description="Target precision when target is precision.")


ALGORITHMS = ("gbt", "random_forest", "logistic_regression")
_ALGORITHM_SETTINGS: dict[str, type[_Section]] = {
    "gbt": GbtSettings,
    "random_forest": RandomForestSettings,
    "logistic_regression": LogisticRegressionSettings,
}


class CandidateSettings(_Section):
    """One model of the selection: an algorithm and what it changes of that algorithm's settings."""

    algorithm: Literal["gbt", "random_forest", "logistic_regression"]
    params: dict[str, float | int] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_params(self) -> CandidateSettings:
        known = set(_ALGORITHM_SETTINGS[self.algorithm].model_fields)
        unknown = sorted(set(self.params) - known)
        if unknown:
            raise ValueError(
                f"{self.algorithm} has no setting {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        return self

    def describe(self) -> str:
        return self.algorithm + "".join(f" {k}={v:g}" for k, v in self.params.items())


class SelectionSettings(_Section):
    folds: int = Field(
        ge=0,
        description="Consecutive time folds at the end of the training window that choose among the candidates by "
        "mean average precision; 0: train training.algorithm as configured.",
    )
    fold_days: int = Field(ge=1, description="Days of each fold's validation window.")
    candidates: list[CandidateSettings] = Field(default_factory=list)


class TrainingSettings(_Section):
    algorithm: Literal["gbt", "random_forest", "logistic_regression"]
    seed: int
    gap_days: int = Field(ge=0, description="Days skipped between training and validation (label feedback delay).")
    validation_days: int = Field(ge=1)
    positive_weight: float | Literal["balanced"] = Field(description='Weight of a fraud row: "balanced" or a number.')
    threshold: ThresholdSettings
    promotion_margin: float = Field(
        ge=0, description="A challenger must beat the champion's average precision by this much."
    )
    shadow_days: int = Field(
        default=0,
        ge=0,
        description="Promotion (by the retraining DAG) waits for this many live days of the challenger's shadow "
        "scores with matured labels, and needs it to beat the champion on them; 0: promote on validation alone.",
    )
    calibration: Literal["platt", "none"] = Field(
        default="platt",
        description="platt: scores become probabilities, fitted on the validation window (lakehouse.ml.calibration); "
        "none: the classifier's own (class-weighted) probabilities.",
    )
    gbt: GbtSettings
    random_forest: RandomForestSettings
    logistic_regression: LogisticRegressionSettings
    selection: SelectionSettings = Field(
        default_factory=lambda: SelectionSettings(folds=0, fold_days=7),
        description="Time-series cross-validation over candidate models (lakehouse.ml.selection).",
    )

    def with_candidate(self, candidate: CandidateSettings) -> TrainingSettings:
        """These settings with ``candidate``'s algorithm and its setting changes."""
        own = getattr(self, candidate.algorithm)
        changed = type(own).model_validate({**own.model_dump(), **candidate.params})
        return self.model_copy(update={"algorithm": candidate.algorithm, candidate.algorithm: changed})


class RegistrySettings(_Section):
    model_name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    experiment: str
    tracking_uri: str | None = Field(
        default=None, description="MLflow tracking/registry URI; default: SQLite under the data dir."
    )
    artifact_location: str | None = Field(
        default=None, description="Where model artifacts go; default: <data_dir>/mlflow/artifacts."
    )


class ScoringSettings(_Section):
    top_reasons: int = Field(ge=1, le=10, description="Reasons (features that drove the score, in words) per alert.")
    profile_rows: int = Field(
        ge=100,
        description="Legitimate feature rows sampled to learn what is typical for each feature "
        "(the reasons' yardstick).",
    )
    reload_check_s: float = Field(
        ge=0,
        description="How often the scorer asks the registry who the champion is and checks the dimension tables "
        "for new versions (0: before every micro-batch, on the latency path).",
    )
    serving_dir: Path | None = Field(
        default=None,
        description="Where the scorer's driver publishes the champion and the dimension snapshot for its tasks "
        "(a path every executor reads); default: <checkpoint of the score query>-serving.",
    )


class QualitySettings(_Section):
    suites_dir: Path = Field(description="Folder of the GX suites (one JSON file per suite).")
    docs_dir: Path | None = Field(default=None, description="Where Data Docs (HTML) go; default: <data_dir>/data_docs.")
    window_days: int = Field(ge=1, description="Event-dated suites look at this many days up to the as-of time.")
    fraud_rate: tuple[float, float] = Field(
        description="Bounds [min, max] of the share of fraud among labelled transactions."
    )
    freshness_hours: float = Field(gt=0, description="The newest event must be at most this old at the as-of time.")
    max_null_share: float = Field(
        ge=0, le=1, description="Null share allowed in optional columns and nullable features."
    )
    training_min_rows: int = Field(ge=1, description="Rows a training set needs at least.")
    training_min_frauds: int = Field(ge=1, description="Labelled frauds a training set needs at least.")

    @model_validator(mode="after")
    def _ordered_bounds(self) -> QualitySettings:
        low, high = self.fraud_rate
        if not 0 <= low <= high <= 1:
            raise ValueError(f"fraud_rate must be [min, max] with 0 <= min <= max <= 1, got {list(self.fraud_rate)}")
        return self


class OrchestrationSettings(_Section):
    retraining_schedule: str = Field(
        description="Cron of the fraud_model_retraining DAG (each run covers one interval)."
    )
    maintenance_schedule: str = Field(description="Cron of the fraud_lakehouse_maintenance DAG.")
    start_date: date = Field(description="First data interval the DAGs know (no catch-up before it).")
    catchup: bool = Field(description="Run missed intervals when the scheduler starts late.")
    training_window_days: int = Field(
        ge=2, description="A retraining run trains and validates on the last N event days of its interval."
    )
    scorer_reload_timeout_s: float = Field(
        ge=0, description="How long a promotion waits for a running scorer to use the new champion."
    )
    airflow_home: Path | None = Field(
        default=None, description="AIRFLOW_HOME of `make airflow`; default: <data_dir>/airflow."
    )
    airflow_port: int = Field(ge=1, le=65535, description="Port of the local Airflow UI (`make airflow`).")
    airflow_host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address the local Airflow UI and API listen on: loopback unless set (0.0.0.0 exposes it).",
    )


class ConsoleSettings(_Section):
    """The analyst console (``fraudlake console``): a web application on loopback."""

    host: str = Field(min_length=1, description="Address it listens on: loopback unless set.")
    port: int = Field(ge=1, le=65535)
    accounts_file: Path | None = Field(
        default=None, description="Accounts (name, role, scrypt hash), JSON; default <data_dir>/console/accounts.json."
    )
    accounts: SecretStr | None = Field(
        default=None, description="Accounts as the same JSON, from FRAUDLAKE_CONSOLE__ACCOUNTS only (then no file)."
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs the session cookies (FRAUDLAKE_CONSOLE__SECRET_KEY only); default: a random key kept "
        "in <data_dir>/console/secret, readable by its owner only.",
    )
    session_hours: float = Field(gt=0, description="A session ends this long after login.")
    consumer_group: str = Field(min_length=1, description="The console's own group on the alert topic.")
    queue_limit: int = Field(ge=100, description="Alerts the queue keeps in memory (the highest scores stay).")
    page_size: int = Field(ge=1, le=1000)


class LocalRedisSettings(_Section):
    """The local ``redis-server`` that ``fraudlake redis up`` runs (when ``decisions.redis.url`` is null)."""

    enabled: bool = Field(description="Run it locally; false when another host serves it.")
    host: str = Field(min_length=1, description="Address it binds: loopback unless set.")
    port: int = Field(ge=1, le=65535)
    binary: str = Field(min_length=1, description="The redis-server executable: a name on the PATH or a path.")
    data_dir: Path | None = Field(
        default=None, description="Its folder (append-only file, config, pid, log); default: <paths.data_dir>/redis."
    )
    start_timeout_s: float = Field(gt=0, description="`up` gives up unless it answers PING within this.")
    stop_timeout_s: float = Field(gt=0, description="`down`: SIGTERM, then SIGKILL after this.")
    maxmemory: str = Field(
        pattern=r"(?i)^\d+([kmg]b?)?$",
        description="Its memory limit (redis units: 1gb, 512mb); at the limit writes fail (noeviction), "
        "nothing is dropped silently.",
    )


class RedisSettings(_Section):
    url: str | None = Field(
        default=None,
        pattern=r"^(redis|rediss|unix)://",
        description="redis://host:port/db of a running Redis; null: the local server (server below).",
    )
    password: SecretStr | None = Field(
        default=None,
        description="From FRAUDLAKE_DECISIONS__REDIS__PASSWORD only; the local server then requires it (requirepass).",
    )
    server: LocalRedisSettings

    @model_validator(mode="after")
    def _no_password_in_url(self) -> RedisSettings:
        # A section-level rule: a failure names the section, never echoes the URL holding the password.
        if self.url is not None and urlsplit(self.url).password is not None:
            raise ValueError("url must not hold a password: give it in FRAUDLAKE_DECISIONS__REDIS__PASSWORD")
        return self


class DecisionsSettings(_Section):
    """The decision service: an HTTP service on loopback that approves, reviews or declines a payment
    from the champion's score, with each user's history in Redis."""

    host: str = Field(min_length=1, description="Address it listens on: loopback unless set.")
    port: int = Field(ge=1, le=65535)
    decline_score: float = Field(
        ge=0,
        le=1,
        description="Approve below the model version's alert threshold, review from it, decline from "
        "max(threshold, decline_score).",
    )
    lock_ttl_ms: int = Field(ge=1, description="The lease of a partition's lock in Redis.")
    max_batch: int = Field(
        ge=1, le=1000, description="At most this many queued requests of a partition are decided together."
    )
    request_timeout_s: float = Field(
        gt=0, description="A request waiting longer for its partition's lock gets 503; also the Redis socket timeout."
    )
    idempotency_ttl_s: int = Field(ge=1, description="How long a request's answer is kept for a retry with its key.")
    key_prefix: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$", description="Every Redis key starts with it.")
    redis: RedisSettings


class Settings(_Section):
    env: str
    project_dir: Path = Field(description="Folder holding conf/; relative paths resolve against it.")
    paths: PathsSettings
    kafka: KafkaSettings
    spark: SparkSettings
    data: DataContractSettings
    simulator: SimulatorSettings
    producer: ProducerSettings
    lakehouse: LakehouseSettings
    streaming: StreamingSettings
    features: FeaturesSettings
    labels: LabelPolicySettings
    training: TrainingSettings
    registry: RegistrySettings
    scoring: ScoringSettings
    quality: QualitySettings
    orchestration: OrchestrationSettings
    cluster: LocalClusterSettings
    console: ConsoleSettings
    decisions: DecisionsSettings

    @property
    def console_dir(self) -> Path:
        return self.paths.data_dir / "console"

    @property
    def redis_data_dir(self) -> Path:
        return self.decisions.redis.server.data_dir or self.paths.data_dir / "redis"

    @property
    def cluster_data_dir(self) -> Path:
        return self.cluster.data_dir or self.paths.data_dir / "cluster"

    @property
    def broker_data_dir(self) -> Path:
        return self.kafka.broker.data_dir or self.paths.data_dir / "kafka"

    @property
    def warehouse_dir(self) -> str:
        return self.spark.warehouse_dir or str(self.paths.data_dir / "warehouse")

    @property
    def metastore_dir(self) -> Path:
        return self.spark.metastore_dir or self.paths.data_dir / "metastore"

    @property
    def data_docs_dir(self) -> Path:
        return self.quality.docs_dir or self.paths.data_dir / "data_docs"

    @property
    def airflow_home(self) -> Path:
        return self.orchestration.airflow_home or self.paths.data_dir / "airflow"

    @property
    def checkpoint_dir(self) -> str:
        return self.spark.checkpoint_dir or str(self.paths.data_dir / "checkpoints")

    def redacted(self) -> dict[str, Any]:
        """The effective settings as plain data, secrets masked: safe to print or log."""
        return self.model_dump(mode="json")
