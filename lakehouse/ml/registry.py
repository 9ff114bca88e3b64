"""The model registry: MLflow's (SQLite backend locally, ``mlflow.spark`` flavor, a ``champion`` alias).

Spark models are saved by Spark's own writer inside the MLflow artifact (no pickle). Each version
carries, as tags: its threshold, feature list, algorithm, the Delta versions of the tables it was
trained on, the code version and its creation time; parameters and metrics live in its MLflow run.
The champion is an alias (so is the shadow, a version the scorer scores beside it without
alerts); the previous champions are kept in a registered-model tag, so
``rollback`` can restore the one before. A version whose artifact does not load and score is
never made champion.

A version also records a digest of its Spark model's files (``artifact_sha256``) when the
artifact store is a local folder: a serving process that trusts the compiled form checked at
registration (see :func:`served_form`) still refuses a version whose files changed since.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.errors import FraudlakeError
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from pyspark.ml import PipelineModel

    from lakehouse.ml.compiled import CompiledModel

log = logging.getLogger(__name__)

CHAMPION = "champion"
SHADOW = "shadow"  # the alias of the version scored beside the champion (no alerts)
HISTORY_TAG = "champion_history"
#: The compiled (numpy) form of a version, in its run's artifacts, and the record of its check.
COMPILED_ARTIFACT = "compiled/model.json"
#: The training report (lakehouse.ml.report) among a version's run artifacts.
REPORT_ARTIFACT = "report"
PARITY_TAG = "compiled_parity"
DIGEST_TAG = "artifact_sha256"


class RegistryError(FraudlakeError):
    """A registry operation that cannot be done (unknown version, broken model, ...)."""


@dataclass(frozen=True)
class ModelVersionInfo:
    version: int
    created_at: str
    algorithm: str
    threshold: float
    average_precision: float | None
    champion: bool
    run_id: str
    tags: dict[str, str]


def tracking_uri(settings: Settings) -> str:
    if settings.registry.tracking_uri:
        return settings.registry.tracking_uri
    folder = settings.paths.data_dir / "mlflow"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def artifact_location(settings: Settings) -> str:
    return settings.registry.artifact_location or (settings.paths.data_dir / "mlflow" / "artifacts").as_uri()


def client(settings: Settings) -> MlflowClient:
    import mlflow
    from mlflow import MlflowClient

    uri = tracking_uri(settings)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def code_version(project_dir: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=project_dir, capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=project_dir, capture_output=True, text=True, timeout=10
        )
        if out.returncode == 0:
            return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import version

    return f"fraudlake {version('fraudlake')}"


def register(
    settings: Settings,
    model: PipelineModel,
    *,
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
    report_dir: Path | None = None,
    compiled: str | None = None,
) -> int:
    """Log the model, its parameters and metrics in a run and register it as a new version
    (``compiled``: the model's numpy form as JSON, :mod:`lakehouse.ml.compiled`, kept beside it)."""
    import mlflow
    import mlflow.spark

    mlflow_client = client(settings)
    experiment = mlflow.get_experiment_by_name(settings.registry.experiment)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else mlflow.create_experiment(settings.registry.experiment, artifact_location=artifact_location(settings))
    )
    created = datetime.now(UTC).isoformat(timespec="seconds")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_params(params)
        mlflow.log_metrics({k: v for k, v in metrics.items() if v == v})  # NaN metrics are left out
        if report_dir is not None and report_dir.exists():
            mlflow.log_artifacts(str(report_dir), artifact_path=REPORT_ARTIFACT)
        if compiled is not None:
            mlflow.log_text(compiled, COMPILED_ARTIFACT)
        info = mlflow.spark.log_model(
            model,
            artifact_path="model",
            registered_model_name=settings.registry.model_name,
            pip_requirements=["pyspark"],  # recorded for the UI; nothing is installed from it
        )
    version = int(info.registered_model_version)
    folder = spark_model_folder(settings, version)
    digest = {DIGEST_TAG: artifact_digest(folder)} if folder.is_dir() else {}  # remote stores: no digest
    for key, value in {
        **tags,
        **digest,
        "created_at": created,
        "code_version": code_version(settings.project_dir),
        "run_id": run.info.run_id,
    }.items():
        mlflow_client.set_model_version_tag(settings.registry.model_name, str(version), key, str(value))
    log.info("registered %s version %s", settings.registry.model_name, version)
    return version


def versions(settings: Settings) -> list[ModelVersionInfo]:
    mlflow_client = client(settings)
    name = settings.registry.model_name
    champion = champion_version(settings, required=False)
    found = mlflow_client.search_model_versions(f"name='{name}'")
    out = []
    for mv in sorted(found, key=lambda v: int(v.version)):
        tags = dict(mv.tags)
        run_metrics = mlflow_client.get_run(mv.run_id).data.metrics if mv.run_id else {}
        out.append(
            ModelVersionInfo(
                version=int(mv.version),
                created_at=tags.get("created_at", ""),
                algorithm=tags.get("algorithm", ""),
                threshold=float(tags.get("threshold", "nan")),
                average_precision=run_metrics.get("average_precision"),
                champion=int(mv.version) == champion,
                run_id=mv.run_id or "",
                tags=tags,
            )
        )
    return out


def version_info(settings: Settings, version: int) -> ModelVersionInfo:
    for info in versions(settings):
        if info.version == version:
            return info
    raise RegistryError(f"model {settings.registry.model_name} has no version {version}")


def champion_version(settings: Settings, *, required: bool = True) -> int | None:
    version = _alias_version(settings, CHAMPION)
    if version is None and required:
        raise RegistryError(
            f"model {settings.registry.model_name} has no champion yet: train one with `fraudlake train`"
        )
    return version


def shadow_version(settings: Settings) -> int | None:
    """The version the scorer scores beside the champion (no alerts), if any."""
    return _alias_version(settings, SHADOW)


def set_shadow(settings: Settings, version: int | None, *, reason: str) -> None:
    """Score ``version`` in the shadow of the champion on the live stream; None: stop."""
    mlflow_client, name = client(settings), settings.registry.model_name
    if version is None:
        if shadow_version(settings) is not None:
            mlflow_client.delete_registered_model_alias(name, SHADOW)
        return
    version_info(settings, version)  # unknown version: a plain error
    mlflow_client.set_registered_model_alias(name, SHADOW, str(version))
    tag(settings, version, "shadow", f"{datetime.now(UTC).isoformat(timespec='seconds')}: {reason}")


def _alias_version(settings: Settings, alias: str) -> int | None:
    from mlflow.exceptions import MlflowException

    try:
        return int(client(settings).get_model_version_by_alias(settings.registry.model_name, alias).version)
    except MlflowException:
        return None


def load(settings: Settings, version: int) -> PipelineModel:
    """The version's Spark model; a RegistryError (never a stack trace) when it is missing or broken."""
    import mlflow.spark

    client(settings)
    try:
        return mlflow.spark.load_model(f"models:/{settings.registry.model_name}/{version}")
    except Exception as exc:  # a corrupt or missing artifact folder, whatever the cause
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RegistryError(
            f"model {settings.registry.model_name} version {version} cannot be loaded: {first_line}"
        ) from exc


def set_champion(settings: Settings, version: int, *, reason: str) -> None:
    """Point the champion alias at ``version`` (remembering the previous one for rollback)."""
    mlflow_client = client(settings)
    name = settings.registry.model_name
    previous = champion_version(settings, required=False)
    history = _history(mlflow_client, name)
    if previous is not None and previous != version:
        history.append(
            {"version": previous, "replaced_at": datetime.now(UTC).isoformat(timespec="seconds"), "reason": reason}
        )
    mlflow_client.set_registered_model_alias(name, CHAMPION, str(version))
    mlflow_client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history[-50:]))
    mlflow_client.set_model_version_tag(
        name, str(version), "promoted", f"{datetime.now(UTC).isoformat(timespec='seconds')}: {reason}"
    )
    log.info("champion of %s: version %s (%s)", name, version, reason)


def rollback(settings: Settings) -> int:
    """Restore the champion before the current one; returns it."""
    mlflow_client = client(settings)
    name = settings.registry.model_name
    history = _history(mlflow_client, name)
    if not history:
        raise RegistryError(f"model {name} has no previous champion to roll back to")
    previous = history.pop()
    mlflow_client.set_registered_model_alias(name, CHAMPION, str(previous["version"]))
    mlflow_client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    return int(previous["version"])


def champion_history(settings: Settings) -> list[dict]:
    """The champions before the current one, oldest first: version, replaced_at, reason."""
    return _history(client(settings), settings.registry.model_name)


def _history(mlflow_client: MlflowClient, name: str) -> list[dict]:
    from mlflow.exceptions import MlflowException

    try:
        return json.loads(mlflow_client.get_registered_model(name).tags.get(HISTORY_TAG, "[]"))
    except MlflowException:
        return []


def tag(settings: Settings, version: int, key: str, value: str) -> None:
    client(settings).set_model_version_tag(settings.registry.model_name, str(version), key, value)


def annotate(settings: Settings, version: int, note: str) -> None:
    """Record a decision about a version (e.g. why it was not promoted) as its ``promotion`` tag."""
    tag(settings, version, "promotion", note)


def promote(settings: Settings, version: int, *, validate, reason: str = "promoted by hand") -> None:
    """Make ``version`` champion after ``validate(model)`` (load and score a sample) succeeds."""
    version_info(settings, version)  # unknown version: a plain error
    validate(load(settings, version))
    set_champion(settings, version, reason=reason)


def check_scores(
    spark, settings: Settings, model: PipelineModel, rows: int = 200, *, version: int | None = None
) -> None:
    """Score a sample of the feature table; a model that cannot is refused (RegistryError). The
    model's compiled form (stored with ``version``, or compiled now) must give the same scores on
    the sample (:func:`lakehouse.ml.compiled.verify`), or the model is refused too."""
    from lakehouse.contract.tables import table_names
    from lakehouse.ml.compiled import NotCompilable, verify
    from lakehouse.ml.pipeline import scored, with_label

    sample = with_label(spark.table(table_names(settings).features).limit(rows)).persist()
    try:
        try:
            scores = [r.score for r in scored(model, sample).select("score").collect()]
        except Exception as exc:
            raise RegistryError(
                f"the model cannot score the feature table: {str(exc).strip().splitlines()[0]}"
            ) from exc
        if any(s is None or not 0.0 <= s <= 1.0 for s in scores):
            raise RegistryError("the model returns scores outside [0, 1]")
        info = version_info(settings, version) if version is not None else None
        try:
            compiled = compiled_model(info, model)
        except NotCompilable as exc:
            log.warning("model version %s has no compiled form (%s): MLlib only", version, exc)
            return
        check = verify(model, compiled, sample, info.threshold if info is not None else 0.5)
        if not check.passed:
            raise RegistryError(f"the model's compiled form does not give MLlib's scores: {check.describe()}")
    finally:
        sample.unpersist()


def compiled_model(info: ModelVersionInfo | None, model: PipelineModel) -> CompiledModel:
    """The version's stored compiled form; compiled from ``model`` when it has none (older versions)."""
    from lakehouse.ml.compiler import compile_pipeline

    stored = _stored_compiled(info) if info is not None else None
    return stored if stored is not None else compile_pipeline(model)


def _stored_compiled(info: ModelVersionInfo) -> CompiledModel | None:
    import mlflow.artifacts

    from lakehouse.ml.compiled import CompiledModel

    try:
        return CompiledModel.from_json(mlflow.artifacts.load_text(f"runs:/{info.run_id}/{COMPILED_ARTIFACT}"))
    except Exception as exc:  # not stored (a version from before), or unreadable: compile again
        log.info("model version %s: no stored compiled form (%s); compiling it", info.version, type(exc).__name__)
        return None


def served_form(settings: Settings, info: ModelVersionInfo) -> CompiledModel | None:
    """The compiled form to serve without loading MLlib's: only for a version whose stored form
    passed its parity check at registration and whose files still have their registered digest.
    None when the version has no such record (older versions, remote stores): the caller loads
    and checks MLlib's model. A RegistryError when the files changed since registration."""
    parity = json.loads(info.tags.get(PARITY_TAG, "{}"))
    if DIGEST_TAG not in info.tags or not parity.get("passed"):
        return None
    folder = spark_model_folder(settings, info.version)
    if not folder.is_dir() or artifact_digest(folder) != info.tags[DIGEST_TAG]:
        raise RegistryError(
            f"model {settings.registry.model_name} version {info.version}: its files changed since it was "
            f"registered (digest mismatch in {folder})"
        )
    return _stored_compiled(info)


def spark_model_folder(settings: Settings, version: int) -> Path:
    """The Spark model's own files in a version's artifact (MLflow's bookkeeping files beside it
    may be rewritten; these never are)."""
    return Path(artifact_path(settings, version)) / "sparkml"


def artifact_digest(folder: Path) -> str:
    """sha256 over a model folder: every file's relative path and bytes, in path order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def artifact_path(settings: Settings, version: int) -> str:
    """Local folder of a version's model artifact (the MLflow model directory)."""
    from urllib.parse import urlparse

    import mlflow.artifacts

    mlflow_client = client(settings)
    source = mlflow_client.get_model_version_download_uri(settings.registry.model_name, str(version))
    if source.startswith("models:/"):
        source = mlflow.artifacts.download_artifacts(source)
    parsed = urlparse(source)
    return parsed.path if parsed.scheme in ("file", "") else source
