"""The decision service's local Redis through the real `fraudlake` CLI: idempotent `up`, `down`/`up`
keeping data (its append-only file), a password that never shows on a command line, and plain
errors when the binary is missing or nothing answers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from redis.exceptions import AuthenticationError

from lakehouse.errors import PlatformError
from lakehouse.platform.redis import LocalRedis, redis_client, require_redis
from lakehouse.settings import load_settings
from tests.helpers import fraudlake, free_port

pytestmark = pytest.mark.integration


def pid_of(output: str) -> int:
    match = re.search(r"pid (\d+)", output)
    assert match, output
    return int(match.group(1))


def own_redis(cli_env: dict[str, str], folder: Path, **more: str) -> dict[str, str]:
    """The CLI's environment with a Redis of the test's own: its folder, a free port."""
    return {
        **cli_env,
        "FRAUDLAKE_PATHS__DATA_DIR": str(folder),
        "FRAUDLAKE_DECISIONS__REDIS__SERVER__PORT": str(free_port()),
        **more,
    }


def test_redis_up_twice_is_harmless_and_down_up_keeps_data(redis_server, cli_env) -> None:
    key = b"fraudlake:test:durable"
    redis_client(redis_server).set(key, b"kept")

    again = fraudlake("redis", "up", env=cli_env)
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout
    first_pid = pid_of(again.stdout)

    down = fraudlake("redis", "down", env=cli_env)
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout

    # While it is down: status says so, and what needs it says so plainly, with the way out.
    status = fraudlake("redis", "status", env=cli_env)
    assert status.returncode == 3
    assert "down" in status.stdout
    address = f"127.0.0.1:{redis_server.decisions.redis.server.port}"
    with pytest.raises(PlatformError, match=rf"^Redis not reachable at {address}: .*`fraudlake redis up`"):
        require_redis(redis_server)

    up = fraudlake("redis", "up", env=cli_env)
    assert up.returncode == 0, up.stderr
    assert "started" in up.stdout
    assert pid_of(up.stdout) != first_pid

    assert require_redis(redis_server).get(key) == b"kept"
    listed = fraudlake("redis", "status", env=cli_env)
    assert listed.returncode == 0
    assert "up" in listed.stdout and f"pid {pid_of(up.stdout)}" in listed.stdout
    assert redis_server.redis_data_dir.stat().st_mode & 0o077 == 0


def test_redis_password_comes_from_the_environment_and_never_shows_on_the_command_line(cli_env, tmp_path) -> None:
    password = 'pass "word" with spaces\\'
    env = own_redis(cli_env, tmp_path / "data", FRAUDLAKE_DECISIONS__REDIS__PASSWORD=password)
    settings = load_settings(environ=env)
    server = LocalRedis(settings)
    status, started = server.up()
    try:
        assert started
        assert require_redis(settings).ping()
        without = load_settings(environ={k: v for k, v in env.items() if "PASSWORD" not in k})
        with pytest.raises(AuthenticationError):
            redis_client(without, retries=0).ping()
        assert password not in Path(f"/proc/{status.pid}/cmdline").read_bytes().decode(errors="replace")
        assert password not in server.service.log_tail(lines=1000)
        assert server.config_file.stat().st_mode & 0o077 == 0
        shown = fraudlake("config", "show", env=env)
        assert shown.returncode == 0 and password not in shown.stdout
    finally:
        assert server.down()


def test_redis_up_without_the_binary_says_how_to_install_it(cli_env, tmp_path) -> None:
    env = own_redis(cli_env, tmp_path / "data", FRAUDLAKE_DECISIONS__REDIS__SERVER__BINARY=str(tmp_path / "nothing"))

    result = fraudlake("redis", "up", env=env)

    assert result.returncode == 4
    assert result.stderr.strip() == (
        "error: redis-server not found: install it (apt-get install redis-server) or set decisions.redis.url "
        "to a running Redis"
    )


def test_redis_not_answering_is_a_plain_error_naming_its_address(cli_env, tmp_path) -> None:
    port = free_port()
    local = own_redis(cli_env, tmp_path / "data", FRAUDLAKE_DECISIONS__REDIS__SERVER__PORT=str(port))
    elsewhere = {**local, "FRAUDLAKE_DECISIONS__REDIS__URL": f"redis://127.0.0.1:{port}/2"}

    status = fraudlake("redis", "status", env=elsewhere)
    assert status.returncode == 3
    assert f"Redis at redis://127.0.0.1:{port}/2: down" in status.stdout
    with pytest.raises(PlatformError, match=rf"^Redis not reachable at 127\.0\.0\.1:{port}: .*`fraudlake redis up`"):
        require_redis(load_settings(environ=local))
    with pytest.raises(PlatformError, match=rf"^Redis not reachable at redis://127\.0\.0\.1:{port}/2: check"):
        require_redis(load_settings(environ=elsewhere))
    # With a Redis elsewhere there is no local one to start.
    up = fraudlake("redis", "up", env=elsewhere)
    assert up.returncode == 4 and up.stderr.startswith("error: no local Redis") and "Traceback" not in up.stderr
