"""The one writer of benchmark reports (``docs/benchmarks/<name>.md``).

Every report opens the same way: its title, the command that produced it, when, the machine and
the settings that shape the figures. A benchmark then only adds its sections: headings, prose and
tables built from rows. Files are written atomically (a temporary file in the same folder, then a
rename), so a run that fails half-way never leaves a half-written page behind.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ALIGNMENTS = {"l": "---", "r": "---:"}


def machine_description() -> str:
    """Cores, CPU model, memory, kernel and Python: enough to tell two machines' figures apart."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}){memory}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[object]], align: str | None = None) -> str:
    """A Markdown table; ``align`` has one letter a column, ``l`` or ``r`` (default: all left)."""
    align = align or "l" * len(columns)
    if len(align) != len(columns) or set(align) - set(ALIGNMENTS):
        raise ValueError(f"align {align!r} must have one of 'l'/'r' for each of the {len(columns)} columns")
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(ALIGNMENTS[a] for a in align) + "|"]
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"row {list(row)!r} has {len(row)} cells for {len(columns)} columns")
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines)


@dataclass
class Report:
    """One benchmark page: a header every report shares, then the benchmark's own blocks."""

    name: str  # the page is docs/benchmarks/<name>.md
    title: str
    command: str  # the command line that produced the figures
    settings: Mapping[str, object] = field(default_factory=dict)  # what shapes the figures, in reading order
    machine: str = field(default_factory=machine_description)
    written_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    blocks: list[str] = field(default_factory=list)
    attachments: dict[str, str] = field(default_factory=dict)  # suffix → text of a file next to the page

    def section(self, heading: str) -> Report:
        self.blocks.append(f"## {heading}")
        return self

    def text(self, *lines: str) -> Report:
        """A paragraph (or a list, when the lines start with ``- ``)."""
        self.blocks.append("\n".join(lines))
        return self

    def table(self, columns: Sequence[str], rows: Iterable[Sequence[object]], align: str | None = None) -> Report:
        self.blocks.append(markdown_table(columns, rows, align))
        return self

    def stages(self, seconds: Mapping[str, float]) -> Report:
        """The seconds of each stage (:class:`StageClock`) and their total."""
        rows = [(name, f"{value:,.0f}") for name, value in seconds.items()]
        return self.table(["stage", "seconds"], [*rows, ("**total**", f"**{sum(seconds.values()):,.0f}**")], "lr")

    def attach(self, suffix: str, text: str) -> Report:
        """A file written next to the page (same name, this suffix), e.g. raw points as ``.jsonl``."""
        self.attachments[suffix] = text
        return self

    def render(self) -> str:
        header = [
            f"# {self.title}",
            "",
            f"Written by `{self.command}` on {self.written_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC.",
            f"Machine: {self.machine}.",
        ]
        if self.settings:
            header += ["", "Settings:", *[f"- {name}: {value}" for name, value in self.settings.items()]]
        return "\n\n".join(["\n".join(header), *self.blocks]) + "\n"

    def default_path(self, project_dir: Path) -> Path:
        return project_dir / "docs" / "benchmarks" / f"{self.name}.md"

    def write(self, path: Path) -> str:
        """Write the page (and its attachments) atomically; returns the page's text."""
        text = self.render()
        for suffix, attachment in self.attachments.items():
            write_atomically(path.with_suffix(suffix), attachment)
        write_atomically(path, text)
        return text


def write_atomically(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never part of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        # mkstemp makes the file private; a report is as readable as the file it replaces
        os.chmod(temporary, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@dataclass
class StageClock:
    """Runs a benchmark's stages one after the other, saying when each starts and how long it took,
    and keeps their seconds in ``seconds`` (name → seconds, in order)."""

    seconds: dict[str, float]
    on_progress: Callable[[str], None] = print

    def __call__(self, name: str, work: Callable[[], object]) -> object:
        self.on_progress(f"{name} ...")
        began = time.perf_counter()
        out = work()
        self.seconds[name] = time.perf_counter() - began
        self.on_progress(f"{name}: {self.seconds[name]:,.0f} s")
        return out
