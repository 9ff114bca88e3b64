"""Console accounts: a name, a role (``analyst`` or ``admin``) and a scrypt hash of the password,
from ``console.accounts_file`` (JSON, written by ``fraudlake console account add``) or from
FRAUDLAKE_CONSOLE__ACCOUNTS (the same JSON, for deployments that hold secrets in the environment).
Passwords are never stored or logged; scrypt (the standard library's) makes each guess costly."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from lakehouse.errors import ConfigError
from lakehouse.platform.entrypoint import write_private
from lakehouse.settings import Settings

ROLES = ("analyst", "admin")
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SCHEME = "scrypt"


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    password_hash: str = field(repr=False)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt$digest``: what the accounts file keeps instead of the password."""
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return "$".join([SCHEME, str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)])


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches; False for a wrong password or a malformed hash."""
    try:
        scheme, n, r, p, salt, digest = password_hash.split("$")
        if scheme != SCHEME:
            return False
        expected = _unb64(digest)
        actual = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


#: Checked when the name is unknown, so that a login takes as long whether the name exists or not.
_DUMMY_HASH = hash_password("not a password", salt=b"\0" * 16)


def authenticate(accounts: dict[str, Account], name: str, password: str) -> Account | None:
    account = accounts.get(name)
    ok = verify_password(account.password_hash if account else _DUMMY_HASH, password)
    return account if ok and account is not None else None


def accounts_path(settings: Settings) -> Path:
    return settings.console.accounts_file or settings.console_dir / "accounts.json"


def parse_accounts(text: str, source: str) -> dict[str, Account]:
    """Accounts from their JSON (a list of {name, role, password_hash}); ConfigError naming
    ``source`` and the entry when one is wrong."""
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{source}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: expected a list of accounts")
    accounts: dict[str, Account] = {}
    for index, entry in enumerate(entries):
        where = f"{source}[{index}]"
        if not isinstance(entry, dict) or set(entry) != {"name", "role", "password_hash"}:
            raise ConfigError(f"{where}: an account has exactly name, role and password_hash")
        name, role, password_hash = entry["name"], entry["role"], entry["password_hash"]
        if not isinstance(name, str) or not name.strip() or name in accounts:
            raise ConfigError(f"{where}: name must be a non-empty text, once")
        if role not in ROLES:
            raise ConfigError(f"{where}: role {role!r} is not one of {', '.join(ROLES)}")
        if not isinstance(password_hash, str) or not password_hash.startswith(f"{SCHEME}$"):
            raise ConfigError(f"{where}: password_hash must be a {SCHEME} hash (fraudlake console account add)")
        accounts[name] = Account(name, role, password_hash)
    return accounts


def load_accounts(settings: Settings) -> dict[str, Account]:
    """The accounts of ``console.accounts`` (environment) or else of the accounts file."""
    if settings.console.accounts is not None:
        accounts = parse_accounts(settings.console.accounts.get_secret_value(), "FRAUDLAKE_CONSOLE__ACCOUNTS")
    else:
        path = accounts_path(settings)
        accounts = parse_accounts(path.read_text(), f"console.accounts_file {path}") if path.is_file() else {}
    if not accounts:
        raise ConfigError(
            "the console has no accounts: add one with `fraudlake console account add NAME --role admin` "
            "(or set FRAUDLAKE_CONSOLE__ACCOUNTS)"
        )
    return accounts


def add_account(settings: Settings, name: str, role: str, password: str) -> Path:
    """Add (or replace) ``name`` in the accounts file, written atomically and readable by its owner only."""
    if role not in ROLES:
        raise ConfigError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if not name.strip():
        raise ConfigError("an account needs a name")
    if len(password) < 8:
        raise ConfigError("a password has at least 8 characters")
    path = accounts_path(settings)
    existing = parse_accounts(path.read_text(), f"console.accounts_file {path}") if path.is_file() else {}
    existing[name] = Account(name, role, hash_password(password))
    entries = [{"name": a.name, "role": a.role, "password_hash": a.password_hash} for a in existing.values()]
    write_private(path, json.dumps(entries, indent=2) + "\n")
    return path


def session_secret(settings: Settings) -> str:
    """The key that signs session cookies: ``console.secret_key``, else one kept in the console's
    folder (made once, readable by its owner only), so that sessions survive a restart."""
    if settings.console.secret_key is not None:
        return settings.console.secret_key.get_secret_value()
    path = settings.console_dir / "secret"
    if not path.is_file():
        write_private(path, secrets.token_urlsafe(32))
    return path.read_text().strip()
