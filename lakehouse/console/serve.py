"""Running the console: its alert reader (a thread with the console's own consumer group on
``fraud_alerts``), its label sender, its Spark session for silver, and the web server (uvicorn)
on ``console.host:console.port``. ``Console`` starts and stops them together; ``fraudlake console``
runs one until Ctrl-C.

The reader never commits offsets: a console that starts again reads every alert the topic still
holds and rebuilds its queue (the decisions come back from the audit trail, ``gold.console_audit``)."""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING

from lakehouse.console.accounts import load_accounts, session_secret
from lakehouse.console.app import Services, create_app
from lakehouse.console.audit import audit_table
from lakehouse.console.decisions import Decider
from lakehouse.console.health import PipelineHealth
from lakehouse.console.lookups import MerchantRisk, SilverHistory
from lakehouse.console.models import RegistryModels
from lakehouse.console.queue import AlertQueue
from lakehouse.errors import FraudlakeError, PlatformError
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)
FIELDS_NEEDED = ("alert_id", "transaction_id", "user_id", "score")


def follow_alerts(settings: Settings, queue: AlertQueue, stop: threading.Event) -> None:
    """Read alerts into ``queue`` until ``stop`` is set. A record that is not an alert is logged
    (partition and offset) and skipped: it cannot stop the queue."""
    from lakehouse.platform.kafka.clients import consumer

    topic = settings.kafka.topics.alerts.name
    reader = consumer(settings.kafka, topic, group_id=settings.console.consumer_group)
    try:
        while not stop.is_set():
            for records in reader.poll(timeout_ms=500).values():
                for record in records:
                    try:
                        alert = json.loads(record.value)
                        if not isinstance(alert, dict) or any(alert.get(k) is None for k in FIELDS_NEEDED):
                            raise ValueError("a field the queue needs is missing")
                    except (ValueError, TypeError, UnicodeDecodeError) as exc:
                        log.warning(
                            "skipped the record at %s/%d@%d: not an alert (%s)",
                            topic,
                            record.partition,
                            record.offset,
                            exc,
                        )
                        continue
                    queue.add(alert)
    finally:
        reader.close()


class Console:
    """The console's parts, started together and stopped together."""

    def __init__(self, settings: Settings, spark: SparkSession) -> None:
        from lakehouse.platform.kafka.senders import make_sender

        self.settings = settings
        accounts = load_accounts(settings)  # before anything starts: no account, no console
        self.audit = audit_table(spark, settings)
        self.queue = AlertQueue(settings.console.queue_limit, decided=self.audit.decisions())
        self.sender = make_sender(settings.kafka, settings.producer)
        self.services = Services(
            accounts,
            self.queue,
            Decider(self._deliver, self.audit),
            self.audit,
            history=SilverHistory(spark, settings),
            merchant=MerchantRisk(spark, settings),
            models=RegistryModels(settings, spark),
            health=PipelineHealth(settings, spark),
            data_docs=settings.data_docs_dir,
            page_size=settings.console.page_size,
        )
        self.app = create_app(
            self.services, secret_key=session_secret(settings), session_hours=settings.console.session_hours
        )
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._server = None
        self._server_thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.settings.console.host}:{self.settings.console.port}"

    def _deliver(self, key: bytes, value: bytes) -> None:
        """Send one label event and wait for the broker's acknowledgement, or raise."""
        before = self.sender.stats.delivered
        self.sender.send(self.settings.kafka.topics.labels.name, key, value)
        self.sender.flush(self.settings.kafka.request_timeout_ms / 1000)
        if self.sender.stats.delivered == before:
            raise FraudlakeError(
                f"Kafka did not acknowledge the label event on {self.settings.kafka.topics.labels.name}"
            )

    def start(self) -> None:
        import uvicorn

        from lakehouse.platform.jvm import port_open
        from lakehouse.platform.waits import wait_until

        config = self.settings.console
        if port_open(config.host, config.port):
            raise PlatformError(
                f"port {config.host}:{config.port} is already in use by another process; set console.port "
                "(FRAUDLAKE_CONSOLE__PORT)"
            )
        self._reader = threading.Thread(
            target=follow_alerts, args=(self.settings, self.queue, self._stop), name="console-alerts", daemon=True
        )
        self._reader.start()
        self._server = uvicorn.Server(
            uvicorn.Config(self.app, host=config.host, port=config.port, log_level="warning", access_log=False)
        )
        self._server_thread = threading.Thread(target=self._server.run, name="console-web", daemon=True)
        self._server_thread.start()
        wait_until(
            lambda: self._server.started,
            timeout_s=30,
            what=f"the console listening on {self.url}",
            check=self._still_serving,
        )

    def _still_serving(self) -> None:
        if self._server_thread is not None and not self._server_thread.is_alive():
            raise PlatformError(f"the console's web server stopped during start-up ({self.url})")

    def wait(self) -> None:
        """Until the web server stops (Ctrl-C, SIGTERM)."""
        if self._server_thread is not None:
            while self._server_thread.is_alive():
                self._server_thread.join(0.5)

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.should_exit = True
        for thread in (self._server_thread, self._reader):
            if thread is not None:
                thread.join(10)
        self.sender.close()
