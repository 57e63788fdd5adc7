"""What a replay needs for the noise-control stages that read more than trigger arguments.

Silences live in a server's ``mad_silences`` table, which the plugin reads with SQL: a replay
takes them from a line-protocol file (``--silences FILE.lp``, the very lines one would write to
the server) and answers the plugin's silences query from it. Maintenance windows are
``[[maintenance]]`` tables of the trigger's TOML file, which have no argument form: a replay
that is given them (``--config``) hands them to the plugin the way a server does, in a TOML file
named by ``config_file_path`` inside a plugin dir of its own, so that the plugin's own parser,
checks and errors apply.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from madcheck.engine.catalog import SchemaQueries
from madcheck.engine.lineprotocol import LineError, iter_lines, to_engine_row
from madcheck.plugin.silences import MAX_SILENCE_ROWS, silences_query

#: the file ``config_file_path`` names in the replay's own plugin dir
MAINTENANCE_FILE = "replay-maintenance.toml"
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class NoiseInputError(ValueError):
    """A ``--silences`` file or ``[[maintenance]]`` table the replay cannot use."""


def read_silences(path: Path, table: str) -> list[dict[str, Any]]:
    """The rows of ``table`` in the line-protocol file at ``path``, newest first, at most as
    many as the plugin reads from a server. Lines of other tables are ignored; a bad line is an
    error naming its number (a silence silently lost would page someone)."""
    rows: list[dict[str, Any]] = []
    try:
        with path.open(encoding="utf-8") as handle:
            for parsed in iter_lines(handle):
                if isinstance(parsed, LineError):
                    raise NoiseInputError(
                        f"--silences {path}: line {parsed.line_number}: {parsed.error_message}"
                    )
                if parsed.measurement == table:
                    rows.append(to_engine_row(parsed))
    except OSError as error:
        raise NoiseInputError(f"--silences {path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise NoiseInputError(f"--silences {path}: not UTF-8 text") from None
    rows.sort(key=lambda row: row["time"], reverse=True)
    return rows[:MAX_SILENCE_ROWS]


class ReplayCatalog(SchemaQueries):
    """The replay's query handler: the catalog's answers, and the silences table (when given)
    answered from ``--silences`` rows, as the server would answer the plugin's query."""

    def __init__(self, silences_table: str = "", silences: Sequence[Mapping[str, Any]] = ()):
        super().__init__()
        self._silences_sql = silences_query(silences_table) if silences_table else None
        self._silences = [dict(row) for row in silences]
        if self._silences_sql is not None and self._silences:
            columns = {name for row in self._silences for name in row} - {"time"}
            self.add_columns(silences_table, ["id"], sorted(columns - {"id"}))

    def __call__(
        self, sql: str, params: dict[str, str] | None, database: str
    ) -> list[dict[str, Any]]:
        if self._silences_sql is not None and sql == self._silences_sql:
            self.calls.append(sql)
            return [dict(row) for row in self._silences]
        return super().__call__(sql, params, database)


def maintenance_toml(windows: object) -> str:
    """``[[maintenance]]`` tables as TOML text, for the plugin to read as a server's would.

    Only text values are written (the plugin's windows take nothing else); anything else is
    refused here, naming the entry, before the replay starts."""
    if not isinstance(windows, list):
        raise NoiseInputError("config file: maintenance must be a list of [[maintenance]] tables")
    parts = []
    for number, window in enumerate(windows, 1):
        if not isinstance(window, dict):
            raise NoiseInputError(f"config file: [[maintenance]] entry {number} is not a table")
        lines = ["[[maintenance]]"]
        for key, value in window.items():
            if not _BARE_KEY.fullmatch(key) or not isinstance(value, str):
                raise NoiseInputError(
                    f"config file: [[maintenance]] entry {number}: {key!r} must be a name "
                    "with a text value"
                )
            # a JSON string is a valid TOML basic string (same escapes)
            lines.append(f"{key} = {json.dumps(value)}")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"
