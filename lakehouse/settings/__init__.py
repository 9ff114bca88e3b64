"""Typed settings: ``conf/base.yaml`` + ``conf/<env>.yaml`` + ``FRAUDLAKE_*`` environment variables.

Loaded once by an entry point (:func:`load_settings`) and passed down; nothing else reads the
environment. Layers, later wins:

1. ``conf/base.yaml``: every key, committed.
2. ``conf/<env>.yaml``: the overlay of the environment (``local``, ``test``, ``cluster``), chosen by
   ``--env`` or ``FRAUDLAKE_ENV`` (default ``local``).
3. ``FRAUDLAKE_<SECTION>__<KEY>`` variables, ``__`` between nesting levels, values parsed as YAML
   scalars: ``FRAUDLAKE_KAFKA__BROKER__PORT=19092``.

Strings in the YAML files may use ``${VAR}`` or ``${VAR:-default}``. Unknown keys and wrong types
fail with one line that names the file (or variable) and the key. Secrets (SASL credentials) are
accepted only from the environment and are held as :class:`pydantic.SecretStr`, so they never show
up when settings are printed or logged.
"""

from lakehouse.settings.loading import (
    CONTROL_VARIABLES,
    ENV_PREFIX,
    SECRET_KEYS,
    default_conf_dir,
    load_settings,
)
from lakehouse.settings.schema import (
    AccountTakeoverSettings,
    AmountAnomalySettings,
    BadRecordsSettings,
    CardTestingSettings,
    CatalogServerSettings,
    CompromisedMerchantSettings,
    DataContractSettings,
    EmbeddedBrokerSettings,
    FeaturesSettings,
    GbtSettings,
    ImpossibleTravelSettings,
    KafkaSettings,
    LabelPolicySettings,
    LabelsSettings,
    LakehouseSettings,
    LocalClusterSettings,
    LogisticRegressionSettings,
    OrchestrationSettings,
    PathsSettings,
    ProducerSettings,
    QualitySettings,
    QuerySettings,
    RandomForestSettings,
    RegistrySettings,
    ScenariosSettings,
    SchemasSettings,
    ScoringSettings,
    Settings,
    SimulatorSettings,
    SparkSettings,
    StolenCardSpreeSettings,
    StreamingSettings,
    ThresholdSettings,
    TopicSettings,
    TopicsSettings,
    TrainingSettings,
)

__all__ = [
    "CONTROL_VARIABLES",
    "ENV_PREFIX",
    "SECRET_KEYS",
    "AccountTakeoverSettings",
    "AmountAnomalySettings",
    "BadRecordsSettings",
    "CardTestingSettings",
    "CatalogServerSettings",
    "CompromisedMerchantSettings",
    "DataContractSettings",
    "EmbeddedBrokerSettings",
    "FeaturesSettings",
    "GbtSettings",
    "ImpossibleTravelSettings",
    "KafkaSettings",
    "LabelPolicySettings",
    "LabelsSettings",
    "LakehouseSettings",
    "LocalClusterSettings",
    "LogisticRegressionSettings",
    "OrchestrationSettings",
    "PathsSettings",
    "ProducerSettings",
    "QualitySettings",
    "QuerySettings",
    "RandomForestSettings",
    "RegistrySettings",
    "ScenariosSettings",
    "SchemasSettings",
    "ScoringSettings",
    "Settings",
    "SimulatorSettings",
    "SparkSettings",
    "StolenCardSpreeSettings",
    "StreamingSettings",
    "ThresholdSettings",
    "TopicSettings",
    "TopicsSettings",
    "TrainingSettings",
    "default_conf_dir",
    "load_settings",
]
