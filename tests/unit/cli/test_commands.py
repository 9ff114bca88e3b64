"""The ``fraudlake`` command tree stays what users know: every command and sub-command, with its
options and arguments (names, flags, defaults, required, repeatable), equals the tree recorded in
``tests/data/cli_commands.json``.

A change to the command line is then a visible change to that file. After a deliberate change
(a new command or option), rewrite the record and review its diff::

    .venv/bin/python -m tests.unit.cli.test_commands --write
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from lakehouse.cli import app

RECORD = Path(__file__).resolve().parents[2] / "data" / "cli_commands.json"


def _json_default(value: Any) -> Any:
    """A default as recorded: JSON values as they are, anything else (paths, callables) as None."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return None
    return value


def _parameter(param: Any) -> dict[str, Any]:
    return {
        "name": param.name,
        "kind": param.param_type_name,
        "opts": list(param.opts),
        "secondary_opts": list(param.secondary_opts),
        "required": param.required,
        "default": _json_default(param.default),
        "is_flag": bool(getattr(param, "is_flag", False)),
        "multiple": param.multiple,
        "envvar": param.envvar,
    }


def command_tree(command: Any, path: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every command under ``command`` by its path ("" for the root, "kafka up" for a
    sub-command), with its parameters in declaration order. Typer's commands are duck-typed
    (Typer ships its own copy of click): a group is a command with sub-commands."""
    subcommands = getattr(command, "commands", None)
    tree = {
        " ".join(path): {
            "group": subcommands is not None,
            "context_settings": _json_default(dict(command.context_settings)),
            "params": [_parameter(p) for p in command.params],
        }
    }
    if subcommands is not None:
        for name, sub in sorted(subcommands.items()):
            tree.update(command_tree(sub, (*path, name)))
    return tree


def current_tree() -> dict[str, Any]:
    return command_tree(typer.main.get_command(app))


def test_cli_commands_and_options_unchanged() -> None:
    recorded = json.loads(RECORD.read_text())
    current = current_tree()
    assert sorted(current) == sorted(recorded), "commands added or removed"
    for path, spec in recorded.items():
        assert current[path] == spec, f"`fraudlake {path}` changed"


def test_cli_help_lists_every_top_level_command() -> None:
    result = CliRunner().invoke(app, ["--help"], prog_name="fraudlake", terminal_width=200)
    assert result.exit_code == 0, result.output
    recorded = [path for path in json.loads(RECORD.read_text()) if path and " " not in path]
    top_level = sorted({*recorded, *typer.main.get_command(app).commands})
    missing = [name for name in top_level if f" {name} " not in result.output]
    assert not missing, f"not listed by --help: {missing}\n{result.output}"


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.unit.cli.test_commands --write")
    RECORD.parent.mkdir(parents=True, exist_ok=True)
    RECORD.write_text(json.dumps(current_tree(), indent=2) + "\n")
    print(f"recorded {len(current_tree())} commands in {RECORD}")
