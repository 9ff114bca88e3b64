"""Running the decision service: its online store (Redis), its producer, the stream scorer's serving
folder, and the web server (uvicorn) on ``decisions.host:decisions.port``. :class:`DecisionServer`
starts and stops them together; ``fraudlake serve`` runs one until Ctrl-C."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.contract.queries import SCORE_QUERY
from lakehouse.decisions.app import create_app
from lakehouse.decisions.service import DecisionService
from lakehouse.decisions.store import OnlineStore
from lakehouse.errors import PlatformError
from lakehouse.platform.streaming import query_plan
from lakehouse.platform.waits import wait_until
from lakehouse.settings import Settings

if TYPE_CHECKING:
    import redis

log = logging.getLogger(__name__)


def serving_dir(settings: Settings) -> Path:
    """The stream scorer's serving folder (where it publishes the champion and the snapshot)."""
    from lakehouse.scoring.scorer import serving_folder

    return serving_folder(settings, query_plan(settings, SCORE_QUERY).checkpoint)


def online_store(settings: Settings, client: redis.Redis | None = None) -> OnlineStore:
    from lakehouse.platform.redis import redis_client

    decisions = settings.decisions
    return OnlineStore(
        client or redis_client(settings),
        prefix=decisions.key_prefix,
        topic=settings.kafka.topics.transactions.name,
        history_ttl_s=int(settings.features.state_ttl_hours * 3600),
        decision_ttl_s=decisions.idempotency_ttl_s,
        lock_ttl_ms=decisions.lock_ttl_ms,
    )


def decision_service(settings: Settings) -> DecisionService:
    """The service on the configured store, broker and serving folder; a plain error when the
    store or the broker does not answer."""
    from lakehouse.platform.kafka.acked import AckedProducer
    from lakehouse.platform.kafka.topics import list_topics
    from lakehouse.platform.redis import require_redis

    require_redis(settings)
    list_topics(settings.kafka)  # a broker that does not answer is said plainly here, not at the first request
    sender = AckedProducer(settings.kafka, settings.producer)
    return DecisionService(settings, online_store(settings), sender, serving_dir(settings))


class DecisionServer:
    """The service and its web server in this process (a background thread)."""

    def __init__(self, settings: Settings, *, port: int | None = None) -> None:
        self.settings = settings
        self.port = port if port is not None else settings.decisions.port
        self.service: DecisionService | None = None
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.settings.decisions.host}:{self.port}"

    def start(self) -> DecisionServer:
        import uvicorn

        self.service = decision_service(self.settings)
        config = uvicorn.Config(
            create_app(self.service),
            host=self.settings.decisions.host,
            port=self.port,
            log_level="warning",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="decisions-http", daemon=True)
        self._thread.start()

        def started() -> bool:
            if not self._thread.is_alive():
                raise PlatformError(f"the decision service did not start on {self.url} (is the port taken?)")
            return self._server.started

        wait_until(started, timeout_s=30, what=f"the decision service on {self.url}")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self.service is not None:
            self.service.producer.close()

    def __enter__(self) -> DecisionServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
