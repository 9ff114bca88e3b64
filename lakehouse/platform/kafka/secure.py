"""The secured local broker's material: a throw-away CA, the broker's TLS key store, the internal
passwords, the server properties of its listeners, and its SCRAM users and ACLs.

Everything is made on the broker's first secured start, in ``<broker data dir>/tls`` (private to
its user, like every data file): ``ca.pem`` (the certificate clients trust, ``kafka.ssl_cafile``),
``ca.p12`` (the CA's key, used once to sign), ``broker.p12`` (the broker's key and chain, for
``localhost`` and the broker's host) and ``secrets.json`` (the key stores' password and the
internal ``admin`` user's, random). ``keytool`` from the JDK does the cryptography; passwords reach
it through its environment, never its command line.

Users: ``admin`` (a super user: the broker itself, between its listeners, and the ACL set-up) is
made at format time (SCRAM credentials must exist before the first start); the app's user
(``kafka.sasl_username``) and the optional alerts reader get their SCRAM credentials from the
running broker through the admin API, so a password can hold any character. ACLs: the app may
use every topic and group; the alerts reader may only read the alerts topic, in groups whose name
starts with its user name; anyone else is refused (``allow.everyone.if.no.acl.found=false``).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lakehouse.errors import PlatformError
from lakehouse.platform.jvm import java_executable
from lakehouse.platform.kafka.clients import admin_client, jaas_config
from lakehouse.settings import KafkaSettings

log = logging.getLogger(__name__)

ADMIN = "admin"
MECHANISM = "SCRAM-SHA-512"
SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"


@dataclass(frozen=True)
class TlsFiles:
    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self.folder / "broker.p12"

    @property
    def secrets_file(self) -> Path:
        return self.folder / "secrets.json"

    def secrets(self) -> dict[str, str]:
        return json.loads(self.secrets_file.read_text())


def make_tls(folder: Path, host: str) -> TlsFiles:
    """The CA, the broker's key store and the internal passwords, made once (idempotent)."""
    files = TlsFiles(folder)
    if files.ca.is_file() and files.keystore.is_file() and files.secrets_file.is_file():
        return files
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for stale in folder.iterdir():  # a half-made set from an interrupted start
        stale.unlink()
    store = secrets.token_urlsafe(24)
    keytool = str(Path(java_executable()).with_name("keytool"))
    env = {**os.environ, "FRAUDLAKE_STOREPASS": store}
    pass_ = ("-storepass:env", "FRAUDLAKE_STOREPASS")
    names = f"dns:localhost,{'ip' if _is_ip(host) else 'dns'}:{host}" + ("" if host == "127.0.0.1" else ",ip:127.0.0.1")

    def run(*args: str) -> None:
        result = subprocess.run([keytool, *args], capture_output=True, text=True, env=env, timeout=120, check=False)
        if result.returncode != 0:
            raise PlatformError(f"keytool {args[0]} failed: {result.stdout}{result.stderr}")

    ca_store, csr, signed = folder / "ca.p12", folder / "broker.csr", folder / "broker-signed.pem"
    key = ("-keyalg", "RSA", "-keysize", "2048", "-storetype", "PKCS12")
    run("-genkeypair", "-alias", "ca", *key, "-validity", "3650", "-dname", "CN=Fraudlake local CA",
        "-ext", "bc:c", "-keystore", str(ca_store), *pass_)  # fmt: skip
    run("-exportcert", "-rfc", "-alias", "ca", "-keystore", str(ca_store), *pass_, "-file", str(files.ca))
    run("-genkeypair", "-alias", "broker", *key, "-validity", "825", "-dname", "CN=localhost",
        "-keystore", str(files.keystore), *pass_)  # fmt: skip
    run("-certreq", "-alias", "broker", "-keystore", str(files.keystore), *pass_, "-file", str(csr))
    run("-gencert", "-alias", "ca", "-keystore", str(ca_store), *pass_, "-infile", str(csr), "-outfile",
        str(signed), "-rfc", "-validity", "825", "-ext", f"SAN={names}", "-ext", "EKU=serverAuth")  # fmt: skip
    run("-importcert", "-noprompt", "-alias", "ca", "-keystore", str(files.keystore), *pass_, "-file", str(files.ca))
    run("-importcert", "-alias", "broker", "-keystore", str(files.keystore), *pass_, "-file", str(signed))
    csr.unlink()
    signed.unlink()
    files.secrets_file.write_text(json.dumps({"store": store, "admin": secrets.token_urlsafe(24)}))
    log.info("made a local CA and the broker's TLS key store in %s", folder)
    return files


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def secure_properties(files: TlsFiles, host: str, port: int, controller_port: int) -> dict[str, str]:
    """server.properties of the secured broker: SASL_SSL for clients and between brokers, SASL
    PLAIN for the controller listener (SCRAM needs the metadata the controller serves), ACLs."""
    secret = files.secrets()
    admin = secret["admin"]
    return {
        "listeners": f"SASL_SSL://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"SASL_SSL://{host}:{port}",
        "inter.broker.listener.name": "SASL_SSL",
        "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": MECHANISM,
        "sasl.mechanism.inter.broker.protocol": MECHANISM,
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": jaas_config(SCRAM_MODULE, ADMIN, admin),
        "sasl.mechanism.controller.protocol": "PLAIN",
        "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
        "listener.name.controller.plain.sasl.jaas.config": jaas_config(PLAIN_MODULE, ADMIN, admin, user_admin=admin),
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(files.keystore),
        "ssl.keystore.password": secret["store"],
        "ssl.truststore.type": "PEM",  # the broker is its own client between listeners
        "ssl.truststore.location": str(files.ca),
        "ssl.client.auth": "none",
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{ADMIN}",
        "allow.everyone.if.no.acl.found": "false",
    }


def format_arguments(files: TlsFiles) -> list[str]:
    """StorageTool ``format`` arguments that create the admin's SCRAM credentials."""
    return ["--add-scram", f"{MECHANISM}=[name={ADMIN},password={files.secrets()['admin']}]"]


def admin_settings(kafka: KafkaSettings, files: TlsFiles, address: str) -> KafkaSettings:
    """Client settings of the internal admin user on the secured broker."""
    from pydantic import SecretStr

    return kafka.model_copy(
        update={
            "bootstrap_servers": address,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": MECHANISM,
            "sasl_username": SecretStr(ADMIN),
            "sasl_password": SecretStr(files.secrets()["admin"]),
            "ssl_cafile": files.ca,
        }
    )


def grant(kafka: KafkaSettings, admin: KafkaSettings) -> list[str]:
    """SCRAM credentials and ACLs of the app's user and the alerts reader (idempotent). Returns
    the users set up."""
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
        ScramMechanism,
        UserScramCredentialUpsertion,
    )

    def allow(user: str, operation, kind, name: str, pattern=ACLResourcePatternType.LITERAL) -> ACL:
        return ACL(f"User:{user}", "*", operation, ACLPermissionType.ALLOW, ResourcePattern(kind, name, pattern))

    users: dict[str, str] = {}
    acls: list[ACL] = []
    if kafka.sasl_username and kafka.sasl_password:
        app = kafka.sasl_username.get_secret_value()
        users[app] = kafka.sasl_password.get_secret_value()
        acls += [
            allow(app, ACLOperation.ALL, ResourceType.TOPIC, "*"),
            allow(app, ACLOperation.ALL, ResourceType.GROUP, "*"),
            allow(app, ACLOperation.ALL, ResourceType.TRANSACTIONAL_ID, "*"),
            allow(app, ACLOperation.ALL, ResourceType.CLUSTER, "kafka-cluster"),
        ]
    broker = kafka.broker
    alerts_reader, reader_password = broker.alerts_reader, broker.alerts_reader_password
    if alerts_reader and reader_password:
        users[alerts_reader] = reader_password.get_secret_value()
        alerts = kafka.topics.alerts.name
        acls += [
            allow(alerts_reader, ACLOperation.READ, ResourceType.TOPIC, alerts),
            allow(alerts_reader, ACLOperation.DESCRIBE, ResourceType.TOPIC, alerts),
            allow(alerts_reader, ACLOperation.READ, ResourceType.GROUP, alerts_reader, ACLResourcePatternType.PREFIXED),
        ]
    if not users:
        return []
    client = admin_client(admin)
    try:
        errors = client.alter_user_scram_credentials(
            [UserScramCredentialUpsertion(u, ScramMechanism.SCRAM_SHA_512, p) for u, p in users.items()]
        )
        failed = {user: error for user, error in (errors or {}).items() if error}
        created = client.create_acls(acls)
    finally:
        client.close()
    if failed or created.get("failed"):
        raise PlatformError(f"setting up the broker's users and ACLs failed: {failed or created['failed']}")
    return sorted(users)
