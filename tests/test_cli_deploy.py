"""Deploying as InfluxDB 3 does today: ``--path``, ``--upload`` and the ``test`` commands.

The upload endpoint takes a file name from anyone holding a token, so the tests try to write
outside the plugin dir every way a name can: ``..``, absolute paths, backslashes, NUL bytes and
a symbolic link planted inside the plugin dir.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

import madcheck
from tests.engine_harness import ServeProcess, admin_auth, run_cli
from tests.support import receiver

PACKAGE = Path(madcheck.__file__).parent

SCHEDULED = """
def process_scheduled_call(influxdb3_local, call_time, args=None):
    influxdb3_local.info(type(call_time).__name__, call_time.utcoffset(), args)
    influxdb3_local.write(LineBuilder("ran").int64_field("at", int(call_time.timestamp())))
"""


def _plugin_package(folder: Path, answer: str) -> Path:
    """A two-module directory plugin whose request entry point answers ``answer``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text(
        "def process_request(influxdb3_local, query_parameters, request_headers, "
        "request_body, args=None):\n"
        "    from .reply import ANSWER\n"
        "    return {'answer': ANSWER}\n"
    )
    (folder / "reply.py").write_text(f"ANSWER = {answer!r}\n")
    cache = folder / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "stale.py").write_text("not uploaded")
    return folder


def test_upload_sends_a_directory_and_the_trigger_runs_it(tmp_path: Path) -> None:
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    local = _plugin_package(tmp_path / "here" / "upload_probe", "first")
    with ServeProcess(tmp_path / "data", plugin_dir) as server:
        _, auth = admin_auth(server.url)
        created = run_cli(
            "create", "trigger", *auth, "-d", "mydb", "--path", str(local), "--upload",
            "--trigger-spec", "request:probe", "probe",
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        assert sorted(p.name for p in (plugin_dir / "upload_probe").iterdir()) == [
            "__init__.py",
            "reply.py",
        ]
        answer = requests.post(
            f"{server.url}/api/v3/engine/probe", headers={"Authorization": f"Bearer {auth[3]}"},
            timeout=10,
        )  # fmt: skip
        assert answer.json() == {"answer": "first"}

        # a second upload replaces the files (the imported package stays loaded until restart)
        (local / "reply.py").write_text("ANSWER = 'second'\n")
        again = run_cli(
            "create", "trigger", *auth, "-d", "mydb", "--plugin-filename", str(local),
            "--upload", "--trigger-spec", "request:probe2", "probe2",
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert (plugin_dir / "upload_probe" / "reply.py").read_text() == "ANSWER = 'second'\n"


def test_upload_refuses_a_directory_without_init(tmp_path: Path) -> None:
    folder = tmp_path / "not_a_package"
    folder.mkdir()
    (folder / "a.py").write_text("")
    result = run_cli(
        "create", "trigger", "--host", "http://127.0.0.1:9", "-d", "db", "--path", str(folder),
        "--upload", "--trigger-spec", "all_tables", "t",
    )  # fmt: skip
    assert result.returncode == 1
    assert "must contain __init__.py" in result.stderr


ESCAPING_NAMES = (
    "../escaped.py",
    "inner/../../escaped.py",
    "/tmp/escaped.py",
    "..\\escaped.py",
    "evil\x00.py",
    "x\x01.py",  # a control character would reach file names and log lines
    "new\nline.py",
    "",
    ".",
    "link/escaped.py",  # link -> a folder outside the plugin dir
)


def test_upload_refuses_names_that_leave_the_plugin_dir(tmp_path: Path) -> None:
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (plugin_dir / "link").symlink_to(outside, target_is_directory=True)
    with ServeProcess(tmp_path / "data", plugin_dir) as server:
        token, _ = admin_auth(server.url)
        statuses = {
            name: requests.post(
                f"{server.url}/api/v3/plugins/files?db=mydb",
                json={"plugin_name": name, "content": "print('pwned')\n"},
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            ).status_code
            for name in ESCAPING_NAMES
        }
        bad_text = requests.post(
            f"{server.url}/api/v3/plugins/files?db=mydb",
            data=b'{"plugin_name": "ok.py", "content": "\\ud800"}',
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=10,
        )
    assert statuses == dict.fromkeys(ESCAPING_NAMES, 400)
    assert bad_text.status_code == 400
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "escaped.py").exists()
    assert sorted(p.name for p in plugin_dir.iterdir()) == ["link"]


def test_upload_needs_a_token(tmp_path: Path) -> None:
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    with ServeProcess(tmp_path / "data", plugin_dir) as server:
        admin_auth(server.url)
        response = requests.post(
            f"{server.url}/api/v3/plugins/files",
            json={"plugin_name": "x.py", "content": ""},
            timeout=10,
        )
    assert response.status_code == 401
    assert list(plugin_dir.iterdir()) == []


def test_wal_plugin_test_runs_the_package_directory_and_needs_a_database(tmp_path: Path) -> None:
    plugin_dir = tmp_path / "plugins"
    shutil.copytree(PACKAGE, plugin_dir / "madcheck", ignore=shutil.ignore_patterns("__pycache__"))
    lines = "\n".join(f"cpu,host=a temp={20 + i % 3} {1_700_000_000 + i}" for i in range(30))
    arguments = "measurement=cpu,mad_thresholds=temp:2.5:20:5,senders=http,http_webhook_url=http://127.0.0.1:9/hook"

    missing = run_cli(
        "test", "wal_plugin", "--lp", lines, "--plugin-dir", str(plugin_dir), "madcheck"
    )
    assert missing.returncode == 2
    assert "-d/--database" in missing.stderr

    result = run_cli(
        "test", "wal_plugin", "-d", "mydb", "--lp", lines, "--input-arguments", arguments,
        "--cache-name", "mine", "--plugin-dir", str(plugin_dir), "madcheck",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    output = json.loads(result.stdout)
    assert output["errors"] == []
    assert output["database_writes"] == {}
    assert output["log_lines"][0] == "INFO: starting execution of wal plugin."
    assert not [line for line in output["log_lines"] if line.startswith("ERROR")]


def test_schedule_plugin_test_calls_with_the_next_fire_time_as_the_engine_passes_it(
    tmp_path: Path,
) -> None:
    plugin = tmp_path / "job.py"
    plugin.write_text(SCHEDULED)
    result = run_cli(
        "test", "schedule_plugin", "-d", "mydb", "--schedule", "0 0 9 * * MON",
        "--input-arguments", "k=v", str(plugin),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    fired = datetime.strptime(output["trigger_time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert (fired.weekday(), fired.hour, fired.minute, fired.second) == (0, 9, 0, 0)
    # call_time as InfluxDB 3 builds it: datetime.fromtimestamp(seconds), naive local time
    assert output["log_lines"][1] == "INFO: datetime None {'k': 'v'}"
    assert output["database_writes"] == {"mydb": [f"ran at={int(fired.timestamp())}i"]}
    assert output["errors"] == []


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("* * * * *", "expected 6 or 7 fields"),
        ("0 0 0 30 FEB *", "never triggers"),
        ("61 * * * * *", "61 is outside 0..59"),
        ("*/0 * * * * *", "step 0 is outside 1..59"),
    ],
)
def test_schedule_plugin_test_refuses_bad_schedules(
    tmp_path: Path, schedule: str, message: str
) -> None:
    plugin = tmp_path / "job.py"
    plugin.write_text(SCHEDULED)
    result = run_cli("test", "schedule_plugin", "-d", "db", "--schedule", schedule, str(plugin))
    assert result.returncode == 2
    assert message in result.stderr


@pytest.mark.parametrize(
    ("plugin_dir", "filename"),
    [(PACKAGE.parent, "madcheck"), (Path(__file__).parents[1] / "plugins", "mad_check_plugin.py")],
    ids=["directory", "single-file"],
)
def test_schedule_plugin_test_runs_the_mad_missing_data_check(
    plugin_dir: Path, filename: str
) -> None:
    now_s = int(datetime.now(UTC).timestamp())
    lines = f"cpu,host=quiet temp=1 {now_s - 600}\ncpu,host=busy temp=1 {now_s}"
    with receiver() as notifier:
        arguments = (
            "measurement=cpu,missing_after=5m,senders=http,http_webhook_url=http://127.0.0.1:9/h,"
            f"port_override={notifier.port},notification_attempts=1"
        )
        result = run_cli(
            "test", "schedule_plugin", "-d", "mydb", "--lp", lines, "--input-arguments",
            arguments, "--plugin-dir", str(plugin_dir), filename,
        )  # fmt: skip
        # the command waited for the background sender before printing: the post is done
        texts = notifier.texts()
    assert result.returncode == 0, result.stdout + result.stderr
    output = json.loads(result.stdout)
    assert output["errors"] == []
    assert len(texts) == 1 and texts[0].startswith("MAD missing data: no data in cpu for 10m")
    assert texts[0].endswith("Tags: host=quiet")
    (history,) = output["database_writes"]["mydb"]
    assert history.startswith("mad_alerts,host=quiet,rule=missing,state=firing,")
    logs = output["log_lines"]
    assert any("configuration loaded" in line and "missing_after=5m" in line for line in logs)
    assert any(line.startswith("INFO: ") and "alert sent to http" in line for line in logs)
    assert not [line for line in logs if line.startswith("ERROR")]


def test_schedule_plugin_test_of_the_mad_check_on_an_empty_database_says_so() -> None:
    arguments = (
        "measurement=cpu,missing_after=5m,senders=http,http_webhook_url=http://127.0.0.1:9/h"
    )
    result = run_cli(
        "test", "schedule_plugin", "-d", "mydb", "--input-arguments", arguments,
        "--plugin-dir", str(PACKAGE.parent), "madcheck",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert output["database_writes"] == {}
    assert any("could not read the last points of 'cpu'" in line for line in output["log_lines"])
