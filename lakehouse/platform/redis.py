"""The decision service's Redis: the local ``redis-server`` (``fraudlake redis up``) and clients.

The local server runs detached like the broker and the catalog server (one pid file, one log,
SIGTERM then SIGKILL at ``stop_timeout_s``: :class:`lakehouse.platform.jvm.JvmService` works for
any process). Its folder holds a generated ``redis.conf``, its append-only file (fsynced every
second and on a clean stop, so data survives ``down``/``up``), ``redis.pid`` and ``logs/redis.out``.
It binds loopback with protected mode on; with ``decisions.redis.password`` (from
FRAUDLAKE_DECISIONS__REDIS__PASSWORD only) it requires that password, written only to
``redis.conf``, readable by its owner only: never on a command line or in a log. Nothing is evicted
at ``maxmemory``: writes fail instead. With ``decisions.redis.url`` set, a Redis elsewhere is used
and there is no local server.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError
from redis.retry import Retry

from lakehouse.errors import PlatformError
from lakehouse.platform.entrypoint import write_private
from lakehouse.platform.jvm import JvmService, alive, port_open
from lakehouse.platform.waits import wait_until
from lakehouse.settings import Settings

CONFIG = "redis.conf"
MISSING_BINARY = (
    "redis-server not found: install it (apt-get install redis-server) or set decisions.redis.url to a running Redis"
)


def redis_address(settings: Settings) -> str:
    """Where the decision service's Redis is, for messages: the URL (never holding a password, the
    settings refuse one) or the local server's host:port."""
    config = settings.decisions.redis
    return config.url or f"{config.server.host}:{config.server.port}"


def redis_client(settings: Settings, *, retries: int | None = None) -> redis.Redis:
    """A client of ``decisions.redis.url``, or else of the local server: bytes in and out, socket
    timeouts of ``request_timeout_s``, the password from the settings. ``retries``: of a command
    after a connection error (None: redis-py's default, 10 with a short backoff; 0 for a quick
    answer whether it is up)."""
    config = settings.decisions.redis
    options: dict = {
        "password": config.password.get_secret_value() if config.password else None,
        "socket_timeout": settings.decisions.request_timeout_s,
        "socket_connect_timeout": settings.decisions.request_timeout_s,
        "decode_responses": False,
    }
    if retries is not None:
        options["retry"] = Retry(NoBackoff(), retries)
    if config.url:
        return redis.Redis.from_url(config.url, **options)
    return redis.Redis(host=config.server.host, port=config.server.port, **options)


def _answers(client: redis.Redis, address: str) -> bool:
    """True when it answers PING; False when nothing (or nothing ready) listens; a plain error when
    it refuses our password."""
    try:
        return bool(client.ping())
    except AuthenticationError:  # a ConnectionError subclass: caught first
        raise PlatformError(
            f"Redis at {address} refused the password: decisions.redis.password "
            "(FRAUDLAKE_DECISIONS__REDIS__PASSWORD) differs from the one it requires; a local server takes "
            "a new one at its next start (fraudlake redis down, then up)"
        ) from None
    except RedisError:  # refused, timed out, still loading its append-only file
        return False


def require_redis(settings: Settings) -> redis.Redis:
    """A client of the decision service's Redis once it answers PING; else a plain error."""
    address = redis_address(settings)
    if not _answers(redis_client(settings, retries=0), address):
        how = (
            "check decisions.redis.url"
            if settings.decisions.redis.url
            else "start the local one with `fraudlake redis up`"
        )
        raise PlatformError(f"Redis not reachable at {address}: {how}")
    return redis_client(settings)


def _quoted(value: str) -> str:
    """A value for redis.conf: double-quoted, with backslashes, quotes and unprintables escaped."""
    escaped = "".join(
        f"\\{c}" if c in '\\"' else c if c.isprintable() else "".join(f"\\x{b:02x}" for b in c.encode()) for c in value
    )
    return f'"{escaped}"'


@dataclass(frozen=True)
class RedisStatus:
    running: bool
    pid: int | None
    address: str
    data_dir: Path


class LocalRedis:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = settings.decisions.redis.server
        self.data_dir = settings.redis_data_dir
        self.address = redis_address(settings)
        self.config_file = self.data_dir / CONFIG
        # redis.conf's path is the marker: `set-proc-title no` keeps the command line as started.
        self.service = JvmService("redis", self.data_dir, (str(self.config_file),), self.config.stop_timeout_s)

    def _require_local(self) -> None:
        url = self.settings.decisions.redis.url
        if url or not self.config.enabled:
            raise PlatformError(
                f"no local Redis in the {self.settings.env!r} environment "
                f"(decisions.redis.url: {url}, decisions.redis.server.enabled: {self.config.enabled})"
            )

    def _write_config(self) -> None:
        password = self.settings.decisions.redis.password
        lines = [
            "# Written by `fraudlake redis up` at every start, from the decisions.redis settings.",
            f"bind {self.config.host}",
            f"port {self.config.port}",
            "protected-mode yes",
            "daemonize no",
            "set-proc-title no",
            'logfile ""',
            f"dir {_quoted(str(self.data_dir))}",
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            f"maxmemory {self.config.maxmemory}",
            "maxmemory-policy noeviction",
        ]
        if password is not None:
            lines.append(f"requirepass {_quoted(password.get_secret_value())}")
        write_private(self.config_file, "\n".join(lines) + "\n")

    def up(self) -> tuple[RedisStatus, bool]:
        """Start the server unless it runs, and wait until it answers PING."""
        self._require_local()
        pid = self.service.running_pid()
        if pid is None:
            binary = shutil.which(self.config.binary)
            if binary is None:
                raise PlatformError(MISSING_BINARY)
            if port_open(self.config.host, self.config.port):
                raise PlatformError(
                    f"port {self.address} is already in use by another process; set decisions.redis.server.port "
                    "(FRAUDLAKE_DECISIONS__REDIS__SERVER__PORT)"
                )
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # its owner's alone, when made here
            self._write_config()
            pid, started = self.service.launch([binary, str(self.config_file)]), True
        else:
            started = False

        def still_alive() -> None:
            if not alive(pid):
                self.service.pid_file.unlink(missing_ok=True)
                raise PlatformError(f"redis-server exited during start-up:\n{self.service.log_tail()}")

        client = redis_client(self.settings, retries=0)
        wait_until(
            lambda: _answers(client, self.address),
            timeout_s=self.config.start_timeout_s,
            what=f"Redis answering on {self.address}",
            check=still_alive,
            on_timeout=lambda: PlatformError(
                f"Redis did not answer PING on {self.address} within {self.config.start_timeout_s:g}s:\n"
                f"{self.service.log_tail()}"
            ),
        )
        return RedisStatus(True, pid, self.address, self.data_dir), started

    def down(self) -> bool:
        """SIGTERM (Redis fsyncs its append-only file and exits), SIGKILL after ``stop_timeout_s``."""
        self._require_local()
        return self.service.stop()

    def status(self) -> RedisStatus:
        """Whether the decision service's Redis (local or at decisions.redis.url) answers PING."""
        local = not self.settings.decisions.redis.url and self.config.enabled
        pid = self.service.running_pid() if local else None
        running = _answers(redis_client(self.settings, retries=0), self.address)
        return RedisStatus(running, pid, self.address, self.data_dir)
