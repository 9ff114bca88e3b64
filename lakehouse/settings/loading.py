"""Loading the settings: ``conf/base.yaml``, the environment's overlay and ``FRAUDLAKE_*`` variables
merged, ``${VAR}`` expanded, validated against :mod:`lakehouse.settings.schema`, and errors that
name the file (or variable) and the key."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lakehouse.errors import ConfigError
from lakehouse.settings.schema import Settings

ENV_PREFIX = "FRAUDLAKE_"
#: Variables that select what to load rather than override a key.
#: FRAUDLAKE_* variables that are not settings: where the config is, and values read by one command
#: (the alert webhook URL, which may hold a token, stays out of files and job processes).
CONTROL_VARIABLES = {
    "FRAUDLAKE_ENV",
    "FRAUDLAKE_CONF_DIR",
    "FRAUDLAKE_ALERTS_WEBHOOK",
    "FRAUDLAKE_FAULT",  # fault injection (lakehouse.platform.faults)
    "FRAUDLAKE_FAULT_GROUP",
    "FRAUDLAKE_FAULT_LOG",
    "FRAUDLAKE_FAULT_MODE",
    "FRAUDLAKE_CLASS_ARCHIVE_DUMP",  # the process that makes the driver's class-data archive
}
#: Keys that may only come from the environment.
SECRET_KEYS = {
    ("kafka", "sasl_username"),
    ("kafka", "sasl_password"),
    ("kafka", "broker", "alerts_reader_password"),
    ("console", "accounts"),
    ("console", "secret_key"),
    ("decisions", "redis", "password"),
}


def default_conf_dir() -> Path:
    """``conf/`` beside the package (the repository layout)."""
    return Path(__file__).resolve().parents[2] / "conf"


def load_settings(
    env: str | None = None,
    conf_dir: Path | str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Load base + overlay + environment into :class:`Settings`, or raise :class:`ConfigError`."""
    environ = os.environ if environ is None else environ
    env = env or environ.get("FRAUDLAKE_ENV") or "local"
    conf_dir = Path(conf_dir or environ.get("FRAUDLAKE_CONF_DIR") or default_conf_dir()).resolve()

    merged: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    base = conf_dir / "base.yaml"
    if not base.is_file():
        raise ConfigError(f"config: {base} not found (set FRAUDLAKE_CONF_DIR to the folder holding base.yaml)")
    overlay = conf_dir / f"{env}.yaml"
    if not overlay.is_file():
        known = sorted(p.stem for p in conf_dir.glob("*.yaml") if p.stem != "base")
        raise ConfigError(f"config: unknown environment {env!r}: no {overlay} (known: {', '.join(known)})")
    for path in (base, overlay):
        layer = _read_yaml(path, environ)
        source = _relative(path, conf_dir.parent)
        _reject_secrets_in_files(layer, source)
        _merge(merged, layer, (), source, origin)
    _merge(merged, _environment_layer(environ), (), None, origin)

    merged["env"] = env
    merged["project_dir"] = str(conf_dir.parent)
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise _config_error(exc, merged, origin) from None
    return _resolve_paths(settings)


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _read_yaml(path: Path, environ: Mapping[str, str]) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config {path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path}: the top level must be a mapping of sections")
    return _expand(data, environ, str(path), ())


def _expand(node: Any, environ: Mapping[str, str], source: str, key: tuple[str, ...]) -> Any:
    if isinstance(node, dict):
        return {k: _expand(v, environ, source, (*key, str(k))) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, environ, source, key) for v in node]
    if isinstance(node, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            raise ConfigError(f"config {source}: {'.'.join(key)}: environment variable {name} is not set")

        return _VAR.sub(substitute, node)
    return node


def _environment_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name in CONTROL_VARIABLES:
            continue
        path = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
        if not all(path):
            raise ConfigError(f"config env {name}: empty key segment (use __ between levels)")
        node = layer
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"config env {name}: conflicts with another FRAUDLAKE_ variable")
        # Secrets stay strings: YAML parsing could turn a password like "0123" into a number.
        node[path[-1]] = raw if path in SECRET_KEYS else _scalar(raw)
    return layer


def _scalar(raw: str) -> Any:
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    return value if isinstance(value, (str, int, float, bool)) or value is None else raw


def _merge(
    into: dict[str, Any],
    layer: dict[str, Any],
    prefix: tuple[str, ...],
    source: str | None,
    origin: dict[tuple[str, ...], str],
) -> None:
    """Deep-merge ``layer`` into ``into``, remembering where each key's value came from."""
    for key, value in layer.items():
        path = (*prefix, str(key))
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value, path, source, origin)
        else:
            into[key] = value
            origin[path] = source if source is not None else _env_name(path)


def _env_name(path: tuple[str, ...]) -> str:
    return "env " + ENV_PREFIX + "__".join(p.upper() for p in path)


def _reject_secrets_in_files(layer: dict[str, Any], source: str) -> None:
    for path in SECRET_KEYS:
        node: Any = layer
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            raise ConfigError(
                f"config {source}: {'.'.join(path)}: secrets are read only from the environment "
                f"({ENV_PREFIX}{'__'.join(path).upper()}); remove it from the file"
            )


def _config_error(exc: ValidationError, merged: dict[str, Any], origin: dict[tuple[str, ...], str]) -> ConfigError:
    first = exc.errors()[0]
    loc = tuple(str(p) for p in first["loc"])
    dotted = ".".join(loc) or "(top level)"
    source = _origin_of(loc, origin)
    if first["type"] == "extra_forbidden":
        return ConfigError(f"config {source}: unknown key {dotted}")
    if first["type"] == "missing":
        return ConfigError(f"config {source}: missing key {dotted}")
    value = first.get("input")
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    message = first["msg"].removeprefix("Value error, ")
    if isinstance(value, (dict, list)):
        # A rule across several keys of a section: name the section, never dump its values.
        return ConfigError(f"config: {dotted}: {message}{more}")
    shown = "<secret>" if loc[:2] in SECRET_KEYS else repr(value)
    return ConfigError(f"config {source}: {dotted} = {shown}: {message}{more}")


def _origin_of(loc: tuple[str, ...], origin: dict[tuple[str, ...], str]) -> str:
    for n in range(len(loc), 0, -1):
        if loc[:n] in origin:
            return origin[loc[:n]]
    # A key missing everywhere, or an error on a whole section: name the section's first source.
    for path, source in origin.items():
        if path[: len(loc)] == loc:
            return source
    return "conf/base.yaml"


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _resolve_paths(settings: Settings) -> Settings:
    """Make every relative path absolute against the project folder, so jobs can change directory."""
    root = settings.project_dir

    def absolute(p: Path | None) -> Path | None:
        return None if p is None else (p if p.is_absolute() else (root / p)).resolve()

    paths = settings.paths.model_copy(update={"data_dir": absolute(settings.paths.data_dir)})
    broker = settings.kafka.broker.model_copy(
        update={
            "jars_dir": absolute(settings.kafka.broker.jars_dir),
            "log4j_config": absolute(settings.kafka.broker.log4j_config),
            "data_dir": absolute(settings.kafka.broker.data_dir),
        }
    )
    catalog_server = settings.spark.catalog_server.model_copy(
        update={"jars_dir": absolute(settings.spark.catalog_server.jars_dir)}
    )
    spark = settings.spark.model_copy(
        update={
            "catalog_server": catalog_server,
            "jars_dir": absolute(settings.spark.jars_dir),
            "log4j_config": absolute(settings.spark.log4j_config),
            "class_archive_dir": absolute(settings.spark.class_archive_dir),
            "metastore_dir": absolute(settings.spark.metastore_dir),
            "warehouse_dir": _absolute_uri(settings.spark.warehouse_dir, root),
            "checkpoint_dir": _absolute_uri(settings.spark.checkpoint_dir, root),
        }
    )
    cafile = absolute(settings.kafka.ssl_cafile)
    if cafile is None and broker.secure and broker.enabled and not settings.kafka.bootstrap_servers:
        # The secured local broker's own CA, made by `fraudlake kafka up`.
        cafile = (broker.data_dir or paths.data_dir / "kafka") / "tls" / "ca.pem"
    kafka = settings.kafka.model_copy(update={"broker": broker, "ssl_cafile": cafile})
    quality = settings.quality.model_copy(
        update={"suites_dir": absolute(settings.quality.suites_dir), "docs_dir": absolute(settings.quality.docs_dir)}
    )
    orchestration = settings.orchestration.model_copy(
        update={"airflow_home": absolute(settings.orchestration.airflow_home)}
    )
    cluster = settings.cluster.model_copy(update={"data_dir": absolute(settings.cluster.data_dir)})
    redis = settings.decisions.redis
    redis_server = redis.server.model_copy(update={"data_dir": absolute(redis.server.data_dir)})
    decisions = settings.decisions.model_copy(update={"redis": redis.model_copy(update={"server": redis_server})})
    return settings.model_copy(
        update={
            "paths": paths,
            "kafka": kafka,
            "spark": spark,
            "quality": quality,
            "orchestration": orchestration,
            "cluster": cluster,
            "decisions": decisions,
        }
    )


def _absolute_uri(value: str | None, root: Path) -> str | None:
    """Local relative folders become absolute; URIs (s3a://, hdfs://, file:/) pass through."""
    if value is None or "://" in value or value.startswith("file:"):
        return value
    p = Path(value)
    return str((p if p.is_absolute() else root / p).resolve())
