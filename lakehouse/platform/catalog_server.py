"""The local catalog server: Apache Derby's network server as its own JVM (``fraudlake catalog up``).

The Hive metastore in Derby is the persistent catalog of every table. Embedded, Derby admits one
JVM per database folder; served over the network, the ingest job, the scorer, ``fraudlake sql``
and the spark-sql shell all share it at once.

It listens on loopback and admits only its user: on the first start a random password is written
to ``derby.properties`` in its folder (private to the user who runs Fraudlake, like every data file),
with Derby's built-in authentication required. The user is Derby's default ``APP``, so that a
catalog made before authentication keeps its tables (they live in the user's schema). Spark
sessions on the same machine read the password from that file (:func:`catalog_credentials`);
Spark redacts it wherever it shows its configuration.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from lakehouse.errors import PlatformError
from lakehouse.platform.entrypoint import write_private
from lakehouse.platform.jvm import JvmService, alive, jar_classpath, java_executable, port_open
from lakehouse.platform.waits import wait_until
from lakehouse.settings import Settings

MAIN_CLASS = "org.apache.derby.drda.NetworkServerControl"
#: Derby's default user: a catalog made before authentication keeps its tables in its schema.
CATALOG_USER = "APP"
PROPERTIES = "derby.properties"


def catalog_credentials(settings: Settings) -> tuple[str, str] | None:
    """(user, password) of the local catalog server, from its ``derby.properties``; None before
    its first authenticated start."""
    path = settings.metastore_dir / PROPERTIES
    if not path.is_file():
        return None
    key = f"derby.user.{CATALOG_USER}="
    for line in path.read_text().splitlines():
        if line.startswith(key):
            return CATALOG_USER, line.removeprefix(key)
    return None


def _require_authentication(folder: Path) -> None:
    """Write ``derby.properties`` with built-in authentication and a random password, once."""
    path = folder / PROPERTIES
    if path.is_file() and f"derby.user.{CATALOG_USER}=" in path.read_text():
        return
    password = secrets.token_urlsafe(24)  # URL-safe: no character that a properties file would escape
    lines = [
        "# Written by fraudlake on the catalog server's first start: only this user may connect.",
        "derby.connection.requireAuthentication=true",
        "derby.authentication.provider=BUILTIN",
        f"derby.user.{CATALOG_USER}={password}",
    ]
    write_private(path, "\n".join(lines) + "\n")


@dataclass(frozen=True)
class CatalogStatus:
    running: bool
    pid: int | None
    address: str
    folder: Path


class LocalCatalogServer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = settings.spark.catalog_server
        self.folder = settings.metastore_dir
        self.address = f"{self.config.host}:{self.config.port}"
        self.service = JvmService(
            "catalog", self.folder, (MAIN_CLASS, f"-Dderby.system.home={self.folder}"), self.config.stop_timeout_s
        )

    def _require_local(self) -> None:
        if self.settings.spark.catalog != "derby-server" or not self.config.enabled:
            raise PlatformError(
                f"no local catalog server in the {self.settings.env!r} environment "
                f"(spark.catalog: {self.settings.spark.catalog}, catalog_server.enabled: {self.config.enabled})"
            )

    def up(self) -> tuple[CatalogStatus, bool]:
        """Start the server unless it runs, and wait until it accepts connections."""
        self._require_local()
        pid = self.service.running_pid()
        if pid is None:
            if port_open(self.config.host, self.config.port):
                raise PlatformError(
                    f"port {self.address} is already in use by another process; set spark.catalog_server.port "
                    "(FRAUDLAKE_SPARK__CATALOG_SERVER__PORT)"
                )
            self.folder.mkdir(parents=True, exist_ok=True)
            _require_authentication(self.folder)
            command = [
                java_executable(),
                f"-Xmx{self.config.heap}",
                f"-Dderby.system.home={self.folder}",
                "-cp",
                jar_classpath(self.config.jars_dir, "derbynet-", "Derby"),
                MAIN_CLASS,
                "start",
                "-h",
                self.config.host,
                "-p",
                str(self.config.port),
                # Derby 10.16 installs no security manager (the JDK's is deprecated for removal,
                # JEP 411): authentication, loopback and private files are what keep others out.
                "-noSecurityManager",
            ]
            pid, started = self.service.launch(command), True
        else:
            started = False

        def still_alive() -> None:
            if not alive(pid):
                self.service.pid_file.unlink(missing_ok=True)
                raise PlatformError(f"the catalog server exited during start-up:\n{self.service.log_tail()}")

        wait_until(
            lambda: port_open(self.config.host, self.config.port),
            timeout_s=self.config.start_timeout_s,
            what=f"the catalog server listening on {self.address}",
            check=still_alive,
            on_timeout=lambda: PlatformError(
                f"the catalog server did not listen on {self.address} within {self.config.start_timeout_s:g}s"
            ),
        )
        return CatalogStatus(True, pid, self.address, self.folder), started

    def down(self) -> bool:
        self._require_local()
        return self.service.stop()

    def status(self) -> CatalogStatus:
        pid = self.service.running_pid() if self.config.enabled else None
        return CatalogStatus(port_open(self.config.host, self.config.port), pid, self.address, self.folder)
