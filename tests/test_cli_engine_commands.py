"""The engine CLI commands that need no server, and their errors when one is absent."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from madcheck.cli import main
from tests.engine_harness import cli_env, run_cli

PLUGIN = """
def process_writes(influxdb3_local, table_batches, args=None):
    tables = [row["table_name"] for row in influxdb3_local.query("SHOW TABLES")
              if row["table_schema"] == "iox"]
    influxdb3_local.info("tables", sorted(tables), "args", args)
    for batch in table_batches:
        for row in batch["rows"]:
            influxdb3_local.write_to_db(
                "other", LineBuilder("copy").tag("host", row["host"]).float64_field("v", row["v"])
            )
    influxdb3_local.warn("done")
"""


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_client_commands_say_how_to_start_a_server() -> None:
    host = f"http://127.0.0.1:{_closed_port()}"
    result = run_cli("query", "--host", host, "--token", "s3cret", "-d", "db", "SELECT 1")
    assert result.returncode == 1
    assert f"no server at {host}: start one with `madcheck serve`" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_every_command_has_help() -> None:
    for command in (
        ["serve"],
        ["create", "trigger"],
        ["create", "token"],
        ["delete", "trigger"],
        ["enable", "trigger"],
        ["disable", "trigger"],
        ["query"],
        ["write"],
        ["install", "package"],
        ["test", "wal_plugin"],
        ["test", "schedule_plugin"],
        ["demo"],
    ):
        with pytest.raises(SystemExit) as exited:
            main([*command, "--help"])
        assert exited.value.code == 0


def test_bad_trigger_arguments_are_refused_before_any_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(
        [
            "create", "trigger", "--host", f"http://127.0.0.1:{_closed_port()}", "-d", "db",
            "--plugin-filename", "p.py", "--trigger-spec", "all_tables",
            "--trigger-arguments", "senders=slack,discord", "t",
        ]
    )  # fmt: skip
    assert code == 1
    assert "invalid trigger argument 'discord'" in capsys.readouterr().err


def test_wal_plugin_test_prints_influxdb_shaped_json(tmp_path: Path) -> None:
    plugin = tmp_path / "copy_plugin.py"
    plugin.write_text(PLUGIN)
    result = run_cli(
        "test", "wal_plugin", "--lp", "cpu,host=a v=1.5 1\ncpu,host=b v=2 2",
        "--input-arguments", "k=v,x=y=z", "--database", "mydb", str(plugin),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert set(output) == {"log_lines", "database_writes", "errors"}
    first, *middle, last = output["log_lines"]
    assert first == "INFO: starting execution of wal plugin."
    assert middle == ["INFO: tables ['cpu'] args {'k': 'v', 'x': 'y=z'}", "WARN: done"]
    assert last.startswith("INFO: finished execution in ")
    assert output["database_writes"] == {"other": ["copy,host=a v=1.5", "copy,host=b v=2.0"]}
    assert output["errors"] == []


def test_wal_plugin_test_reports_plugin_errors(tmp_path: Path) -> None:
    plugin = tmp_path / "broken.py"
    plugin.write_text("def process_writes(influxdb3_local, table_batches, args=None):\n    1/0\n")
    result = run_cli("test", "wal_plugin", "-d", "mydb", "--lp", "cpu v=1", str(plugin))
    assert result.returncode == 1
    assert json.loads(result.stdout)["errors"] == ["ZeroDivisionError: division by zero"]


def test_install_package_shows_pips_failure_and_exits_non_zero(tmp_path: Path) -> None:
    missing = tmp_path / "madcheck-0.1.0-py3-none-any.whl"
    env = cli_env(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")  # nothing leaves the host
    result = run_cli("install", "package", str(missing), env=env)
    assert result.returncode != 0
    assert "does not exist" in result.stdout + result.stderr  # pip's own message
    assert f"error: pip failed with exit status {result.returncode}" in result.stderr
