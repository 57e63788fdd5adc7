"""The trigger arguments a replay hands to the plugin.

A replay should run the configuration a user deploys, so it accepts every trigger argument
(``--state-change-count 3`` is ``state_change_count=3``) and, with ``--config``, the same TOML
file. Unlike the deployed trigger, where the file wins over the arguments, here the command line
wins over the file: trying ``--mad-thresholds temp:3:20:5`` against a deployed file must not need
an edit of that file. Everything reaches the plugin as ``str``, as the engine delivers it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from madcheck.config.quoting import unquote
from madcheck.config.settings import ConfigError, read_toml_file

#: A sender the replay supplies when none is configured: alerts are captured, never delivered,
#: but the plugin (rightly) refuses to run without a usable sender.
PLACEHOLDER_SENDER = {"senders": "http", "http_webhook_url": "http://127.0.0.1/madcheck-replay"}
#: The token the capture endpoint is called with (it checks nothing; this keeps the plugin from
#: warning that alerts go out unauthenticated).
CAPTURE_TOKEN = "madcheck-replay"
DEFAULT_ALERTS_TABLE = "mad_alerts"


class ArgumentError(ValueError):
    """The replay cannot start with these arguments; the message says which and why."""


def parse_trigger_options(tokens: Sequence[str]) -> dict[str, str]:
    """``["--state-change-count", "3", "--senders=slack"]`` -> trigger arguments.

    Dashes in names become underscores, so every trigger argument of the plugin can be written
    the way command-line options usually are.
    """
    arguments: dict[str, str] = {}
    position = 0
    while position < len(tokens):
        token = tokens[position]
        if not token.startswith("--") or token == "--":
            raise ArgumentError(
                f"unexpected {token!r}: trigger arguments are given as --name value"
            )
        name, sep, value = token[2:].partition("=")
        if not sep:
            if position + 1 >= len(tokens) or tokens[position + 1].startswith("--"):
                raise ArgumentError(
                    f"--{name} needs a value; write --{name}=VALUE, or put it after the files"
                )
            value = tokens[position + 1]
            position += 1
        position += 1
        key = name.replace("-", "_")
        if not key:
            raise ArgumentError(f"unexpected {token!r}: the argument has no name")
        arguments[key] = value
    return arguments


#: TOML keys with no argument form: the plugin reads them from its config file only
FILE_ONLY_KEYS = ("maintenance",)


def read_config_file(path: Path) -> tuple[dict[str, str], dict[str, object]]:
    """A trigger's TOML file, as the trigger arguments it stands for, and apart from them the
    tables (``FILE_ONLY_KEYS``) the plugin can only read from a file."""
    try:
        data = read_toml_file(path, f"config file {path}")
    except ConfigError as error:
        raise ArgumentError(str(error)) from None
    arguments = {
        name: _as_argument(name, value)
        for name, value in data.items()
        if name not in FILE_ONLY_KEYS
    }
    return arguments, {name: data[name] for name in FILE_ONLY_KEYS if name in data}


def _as_argument(name: str, value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    if isinstance(value, list) and name == "mad_thresholds":
        return "@".join(
            ":".join(str(part) for part in item) if isinstance(item, list) else str(item)
            for item in value
        )
    if isinstance(value, list) and name == "senders":
        return ".".join(str(item) for item in value)
    raise ArgumentError(f"config file: {name} must be a string, a number or a boolean")


def is_captured(arguments: Mapping[str, str]) -> bool:
    """Whether these arguments (``trigger_arguments`` with a capture port) deliver to the
    replay's stand-in rather than to a notifier the user named with ``--send``."""
    return arguments.get("influxdb3_auth_token") == CAPTURE_TOKEN


def trigger_arguments(
    given: Mapping[str, str],
    config_file: Mapping[str, str] | None = None,
    capture_port: int | None = None,
) -> dict[str, str]:
    """The arguments of the replayed trigger.

    ``capture_port`` points delivery at the replay's own capture endpoint; ``None`` (``--send``)
    leaves delivery as configured. The alert history is always on: the replay reads the alerts
    from it, so an empty ``alerts_table`` falls back to the default table.
    """
    arguments = dict(config_file or {})
    arguments.update(given)
    arguments.pop("config_file_path", None)
    if not arguments.get("senders", "").strip():
        if capture_port is None:
            raise ArgumentError("--send needs the senders to deliver to (--senders ...)")
        arguments.update(PLACEHOLDER_SENDER)
    if capture_port is not None:
        arguments["port_override"] = str(capture_port)
        arguments["influxdb3_auth_token"] = CAPTURE_TOKEN
        arguments["notification_attempts"] = "1"
    # a backtest starts at the file's first point: there is no stored history to warm up from
    arguments.setdefault("warm_start", "false")
    if not unquote(arguments.get("alerts_table", "")):
        arguments["alerts_table"] = DEFAULT_ALERTS_TABLE
    return arguments
