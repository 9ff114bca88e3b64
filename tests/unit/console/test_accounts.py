"""Console accounts: scrypt hashes, never the password; an accounts file or variable that is
wrong names the entry; the file and the session key are private to their owner."""

from __future__ import annotations

import json
import stat

import pytest

from lakehouse.console.accounts import (
    accounts_path,
    add_account,
    authenticate,
    hash_password,
    load_accounts,
    session_secret,
    verify_password,
)
from lakehouse.errors import ConfigError
from lakehouse.settings import load_settings


@pytest.fixture
def local(tmp_path):
    return load_settings("local", environ={"FRAUDLAKE_PATHS__DATA_DIR": str(tmp_path)})


def test_a_hash_verifies_its_password_only_and_holds_no_trace_of_it() -> None:
    digest = hash_password("s3cret-pass")
    assert digest.startswith("scrypt$") and "s3cret" not in digest
    assert verify_password(digest, "s3cret-pass") and not verify_password(digest, "s3cret-pasS")
    assert not verify_password("scrypt$garbage", "s3cret-pass") and not verify_password("", "")
    assert hash_password("same") != hash_password("same")  # salted


def test_accounts_added_by_the_command_are_private_and_log_in(local) -> None:
    path = add_account(local, "ana", "analyst", "long enough")
    add_account(local, "root", "admin", "also long enough")
    add_account(local, "ana", "admin", "a new password")  # replaced, not doubled
    assert path == accounts_path(local) and stat.S_IMODE(path.stat().st_mode) == 0o600
    accounts = load_accounts(local)
    assert {a.name: a.role for a in accounts.values()} == {"ana": "admin", "root": "admin"}
    assert authenticate(accounts, "ana", "a new password") is accounts["ana"]
    assert authenticate(accounts, "ana", "long enough") is None and authenticate(accounts, "nobody", "x") is None
    with pytest.raises(ConfigError, match="at least 8"):
        add_account(local, "bob", "analyst", "short")


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ("not json", "not JSON"),
        (json.dumps({"name": "x"}), "a list of accounts"),
        (json.dumps([{"name": "x", "role": "analyst"}]), r"\[0\]: an account has exactly"),
        (json.dumps([{"name": "x", "role": "boss", "password_hash": "scrypt$1"}]), r"\[0\]: role 'boss'"),
        (json.dumps([{"name": "x", "role": "admin", "password_hash": "plain"}]), r"\[0\]: password_hash"),
    ],
)
def test_accounts_from_the_environment_that_are_wrong_name_the_variable_and_the_entry(tmp_path, entries, message):
    environ = {"FRAUDLAKE_PATHS__DATA_DIR": str(tmp_path), "FRAUDLAKE_CONSOLE__ACCOUNTS": entries}
    with pytest.raises(ConfigError, match=f"FRAUDLAKE_CONSOLE__ACCOUNTS.*{message}|{message}"):
        load_accounts(load_settings("local", environ=environ))


def test_no_account_says_how_to_add_one(local) -> None:
    with pytest.raises(ConfigError, match="fraudlake console account add"):
        load_accounts(local)


def test_the_session_key_is_made_once_and_kept_private(local) -> None:
    first = session_secret(local)
    assert len(first) >= 32 and session_secret(local) == first
    assert stat.S_IMODE((local.console_dir / "secret").stat().st_mode) == 0o600
