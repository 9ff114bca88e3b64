"""Local JVM services run in the background (the Kafka broker, the catalog server): one pid file,
one log folder, start detached, stop with SIGTERM then SIGKILL after a deadline.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from lakehouse.errors import PlatformError
from lakehouse.platform.waits import wait_until

log = logging.getLogger(__name__)

#: After SIGKILL, how long to wait for the process to be gone.
KILL_TIMEOUT_S = 10


def java_executable() -> str:
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise PlatformError("java not found: install Java 17 or set JAVA_HOME")
    return java


def jar_classpath(folder: Path, marker: str, what: str) -> str:
    """``folder/*`` once it holds a jar starting with ``marker``; else a plain error."""
    if not folder.is_dir() or not any(folder.glob(f"{marker}*.jar")):
        raise PlatformError(f"{what} jars missing in {folder}: run `make jars` (or `make setup`)")
    return str(folder / "*")


def alive(pid: int) -> bool:
    try:
        # Reap our own exited child first: a zombie still answers kill(pid, 0).
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        try:
            return "\nState:\tZ" not in status.read_text()
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the system's pick)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


class JvmService:
    """A background JVM identified by a pid file and markers in its command line."""

    def __init__(self, name: str, home: Path, markers: tuple[str, ...], stop_timeout_s: float) -> None:
        self.name = name
        self.home = home
        self.logs = home / "logs"
        self.pid_file = home / f"{name}.pid"
        self.markers = markers
        self.stop_timeout_s = stop_timeout_s

    def running_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if alive(pid) and self._is_ours(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)  # stale: the process died or the pid was reused
        return None

    def launch(self, command: list[str], env: dict[str, str] | None = None) -> int:
        """Start ``command`` detached (its own session), its output in ``logs/<name>.out``;
        ``env``: the child's whole environment (default: this process's)."""
        self.logs.mkdir(parents=True, exist_ok=True)
        out = open(self.logs / f"{self.name}.out", "ab")  # noqa: SIM115 - handed to the child process
        try:
            process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.home,
                env=env,
                start_new_session=True,  # Ctrl-C in the terminal that started it must not stop it
            )
        finally:
            out.close()
        self.pid_file.write_text(str(process.pid))
        log.info("started %s pid %d", self.name, process.pid)
        return process.pid

    def stop(self) -> bool:
        """SIGTERM (a clean shutdown), SIGKILL after ``stop_timeout_s``; True when one was running."""
        return stop_together([self])

    def log_tail(self, lines: int = 20) -> str:
        own = self.logs / f"{self.name}.out"  # services may share a log folder
        for path in [own, *sorted(self.logs.glob("*"))]:
            if path.is_file() and path.stat().st_size:
                return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        return "(no log output)"

    def _is_ours(self, pid: int) -> bool:
        cmdline = Path(f"/proc/{pid}/cmdline")
        if not cmdline.exists():  # no procfs (macOS): trust the pid file
            return True
        try:
            raw = cmdline.read_bytes()
        except OSError:
            return False
        if not raw:  # between a launcher script's exec and the JVM's start: not readable yet
            return True
        args = raw.split(b"\0")
        return all(marker.encode() in args for marker in self.markers)


def stop_together(services: list[JvmService]) -> bool:
    """Stop services side by side: SIGTERM to all of them first, then wait for each, SIGKILL at its
    deadline. (The nodes of a Kafka quorum must go together: the last one stopped alone waits in
    vain for a controller to hand its partitions to.) True when any was running."""
    running = [(service, pid) for service in services if (pid := service.running_pid()) is not None]
    for _, pid in running:
        os.kill(pid, signal.SIGTERM)
    for service, pid in running:
        try:
            wait_until(
                lambda pid=pid: not alive(pid), timeout_s=service.stop_timeout_s, what=f"{service.name} stopping"
            )
        except TimeoutError:
            log.warning("%s pid %d did not stop within %ss; killing it", service.name, pid, service.stop_timeout_s)
            os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                wait_until(lambda pid=pid: not alive(pid), timeout_s=KILL_TIMEOUT_S, what=f"{service.name} killed")
        service.pid_file.unlink(missing_ok=True)
    return bool(running)
