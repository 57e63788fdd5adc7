"""``madcheck replay`` end to end: recorded files in, exactly the expected alerts out."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from madcheck.cli import main
from madcheck.engine.catalog import SchemaQueries
from madcheck.replay.app import default_plugin
from madcheck.replay.arguments import is_captured, trigger_arguments
from madcheck.replay.capture import CaptureClient, CaptureEndpoint
from madcheck.replay.trigger import ReplayTrigger
from tests import replay_data as data
from tests.support import REPO, free_port, receiver


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")


def replay(*args: object) -> int:
    return main(["replay", *(str(a) for a in args)])


def read_alerts(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def alert_keys(alerts: list[dict]) -> list[tuple[str, int]]:
    """(host, index) of each alert, from its time."""
    keys = []
    for alert in alerts:
        index = next(i for i in range(data.POINTS) if data.rfc3339(i) == alert["time"])
        keys.append((alert["tags"]["host"], index))
    return keys


def test_alerts_file_holds_exactly_the_injected_anomalies(tmp_path, capsys):
    lp = data.write_lp(tmp_path / "cpu.lp")
    out = tmp_path / "alerts.jsonl"
    code = replay(lp, "--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS, "--alerts", out)
    assert code == 0
    alerts = read_alerts(out)
    assert alert_keys(alerts) == data.EXPECTED
    for alert, (host, index) in zip(alerts, data.EXPECTED, strict=True):
        median, mad = data.window_stats(host, index)
        assert alert["value"] == data.value(host, index)
        assert alert["median"] == pytest.approx(median)
        assert alert["mad"] == pytest.approx(mad)
        assert alert["lower"] == pytest.approx(median - 3 * mad)
        assert alert["upper"] == pytest.approx(median + 3 * mad)
        assert (alert["field"], alert["rule"], alert["k"], alert["window_count"]) == (
            "temp",
            "count",
            3.0,
            20,
        )
        assert alert["suppressed"] is False
    summary = capsys.readouterr().out
    assert "4 alerts fired, 0 suppressed" in summary
    assert "4 notifications (none sent)" in summary


def test_summary_counts_points_outliers_and_alerts_per_series(tmp_path, capsys):
    lp = data.write_lp(tmp_path / "cpu.lp")
    replay(lp, "--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS)
    rows = {}
    for line in capsys.readouterr().out.splitlines():
        cells = [cell.strip() for cell in line.strip("│┃ ").split("│")]
        if len(cells) == 8 and cells[0].startswith("host="):
            rows[cells[0]] = cells[3:]
    # points, outliers (every injected value), fired, suppressed, incidents: host a's run of 6
    # fires twice (142, 145) in one incident, its run of 3 (62) is another
    assert rows == {
        "host=a": ["200", "11", "3", "0", "2"],
        "host=b": ["200", "3", "1", "0", "1"],
        "host=c": ["200", "0", "0", "0", "0"],
    }


def test_flapping_series_alerts_are_marked_suppressed(tmp_path):
    # odd indexes: the spikes replace 10.2s, so no value fills more than half a window (MAD > 0)
    lines = [
        f"cpu,host=a temp={50.0 if i in (41, 43, 45, 47) else data.value('c', i)} {data.time_s(i)}"
        for i in range(80)
    ]
    lp = data.write_lp(tmp_path / "flap.lp", lines)
    out = tmp_path / "alerts.jsonl"
    replay(
        lp, "--measurement", "cpu", "--mad-thresholds", "temp:3:20:1",
        "--alerts", out, "--state-change-count", "3",
    )  # fmt: skip
    alerts = read_alerts(out)
    # the first isolated outlier is one transition; from the second on there are three or more
    assert [(a["time"], a["suppressed"]) for a in alerts] == [
        (data.rfc3339(41), False),
        (data.rfc3339(43), True),
        (data.rfc3339(45), True),
        (data.rfc3339(47), True),
    ]
    assert [a["transitions"] for a in alerts] == [1, 3, 5, 7]


def test_gzip_input_gives_the_same_alerts(tmp_path):
    plain = data.write_lp(tmp_path / "cpu.lp")
    packed = tmp_path / "cpu.lp.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    out = tmp_path / "alerts.jsonl"
    assert replay(packed, "--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS,
                  "--alerts", out) == 0  # fmt: skip
    assert alert_keys(read_alerts(out)) == data.EXPECTED


def test_millisecond_timestamps_with_explicit_precision(tmp_path):
    lp = data.write_lp(tmp_path / "cpu.lp", data.lp_lines(scale=1000))
    out = tmp_path / "alerts.jsonl"
    replay(lp, "--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS,
           "--precision", "ms", "--alerts", out)  # fmt: skip
    assert alert_keys(read_alerts(out)) == data.EXPECTED


def test_csv_export_gives_the_same_alerts(tmp_path):
    csv_file = data.write_csv(tmp_path / "cpu.csv")
    out = tmp_path / "alerts.csv"
    assert replay(csv_file, "--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS,
                  "--alerts", out) == 0  # fmt: skip
    import csv

    rows = list(csv.DictReader(out.open()))
    assert [(r["tags"], r["time"]) for r in rows] == [
        (f"host={host}", data.rfc3339(index)) for host, index in data.EXPECTED
    ]
    assert {r["suppressed"] for r in rows} == {"false"}


def test_csv_numeric_tag_needs_tags_option(tmp_path):
    """A numeric column is a field unless --tags names it; as a tag it splits the series."""
    rows = ["time,rack,temp"]
    rows += [f"{data.time_s(i)},{rack},{data.value('c', i)}" for i in range(100) for rack in (1, 2)]
    rows[1 + 2 * 60 + 1] = f"{data.time_s(60)},2,50"  # rack 2 spikes three times
    rows[1 + 2 * 61 + 1] = f"{data.time_s(61)},2,50"
    rows[1 + 2 * 62 + 1] = f"{data.time_s(62)},2,50"
    csv_file = tmp_path / "racks.csv"
    csv_file.write_text("\n".join(rows) + "\n")
    out = tmp_path / "alerts.jsonl"
    replay(csv_file, "--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS,
           "--tags", "rack", "--alerts", out)  # fmt: skip
    assert [(a["tags"], a["time"]) for a in read_alerts(out)] == [({"rack": "2"}, data.rfc3339(62))]


def test_bad_lines_are_reported_with_line_numbers_and_skipped(tmp_path, capsys):
    lines = data.lp_lines()
    lines.insert(6, "this is not line protocol")  # line 7
    lines.insert(9, "cpu,temp=1 load=2 1700000000")  # line 10: temp was a field
    lines.insert(11, "cpu,host=a temp=10")  # line 12: no timestamp
    lp = data.write_lp(tmp_path / "cpu.lp", lines)
    out = tmp_path / "alerts.jsonl"
    assert replay(lp, "--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS,
                  "--alerts", out) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert f"{lp}:7: skipped:" in err
    assert f"{lp}:10: skipped: column 'temp' is a field in earlier lines" in err
    assert f"{lp}:12: skipped: no timestamp" in err
    assert alert_keys(read_alerts(out)) == data.EXPECTED


def test_bad_line_messages_are_capped_with_a_count(tmp_path, capsys):
    lines = data.lp_lines()
    for position in (3, 5, 7, 9, 11):
        lines.insert(position, "garbage")
    lp = data.write_lp(tmp_path / "cpu.lp", lines)
    replay(lp, "--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS,
           "--max-errors-shown", "2")  # fmt: skip
    captured = capsys.readouterr()
    assert captured.err.count("skipped:") == 2
    assert "5 bad lines skipped in all (first 2 shown)" in captured.err
    assert "5 bad lines skipped" in captured.out


def test_other_tables_are_ignored(tmp_path, capsys):
    lines = data.lp_lines()
    lines.insert(0, "mem,host=a used=1 1700000000")
    lp = data.write_lp(tmp_path / "cpu.lp", lines)
    out = tmp_path / "alerts.jsonl"
    replay(lp, "--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS, "--alerts", out)
    assert alert_keys(read_alerts(out)) == data.EXPECTED
    assert "1 line of other tables ignored" in capsys.readouterr().out


def test_config_file_is_used_and_the_command_line_wins(tmp_path):
    lp = data.write_lp(tmp_path / "cpu.lp")
    config = tmp_path / "mad.toml"
    config.write_text('measurement = "cpu"\nmad_thresholds = [["temp", 3, 20, 2]]\n')
    out = tmp_path / "alerts.jsonl"
    replay(lp, "--config", config, "--alerts", out)
    # count 2: the run of 2 now alerts too, the run of 6 alerts three times
    assert alert_keys(read_alerts(out)) == [
        ("a", 61), ("a", 101), ("a", 141), ("a", 143), ("a", 145), ("b", 151),
    ]  # fmt: skip
    replay(lp, "--config", config, "--mad-thresholds", data.THRESHOLDS, "--alerts", out)
    assert alert_keys(read_alerts(out)) == data.EXPECTED


def test_send_delivers_each_fired_alert_to_the_notifier(tmp_path):
    lp = data.write_lp(tmp_path / "cpu.lp")
    with receiver() as notifier:
        code = replay(
            lp, "--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS, "--send",
            "--port", notifier.port, "--token", "s3cret-token",
            "--senders", "http", "--http-webhook-url", "http://127.0.0.1:9/hook",
        )  # fmt: skip
    assert code == 0
    assert len(notifier.requests) == len(data.EXPECTED)
    assert {r.path for r in notifier.requests} == {"/api/v3/engine/notify"}
    assert {r.headers["authorization"] for r in notifier.requests} == {"Bearer s3cret-token"}
    hosts = [r.body["alert"]["tags"]["host"] for r in notifier.requests]
    assert hosts == [host for host, _ in data.EXPECTED]


def test_notifier_options_without_send_are_refused(tmp_path, capsys):
    lp = data.write_lp(tmp_path / "cpu.lp")
    code = replay(lp, "--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS, "--port", "1")
    assert code == 2
    assert "need --send" in capsys.readouterr().err


def test_configuration_errors_are_reported_before_reading(tmp_path, capsys):
    lp = data.write_lp(tmp_path / "cpu.lp")
    assert replay(lp, "--measurement", "cpu") == 2
    assert "mad_thresholds is required" in capsys.readouterr().err


def test_command_line_runs_as_a_subprocess(tmp_path):
    lp = data.write_lp(tmp_path / "cpu.lp")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "madcheck", "replay", str(lp), "--measurement", "cpu",
         "--mad-thresholds", data.THRESHOLDS, "--state-change-count", "0"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "4 alerts fired" in done.stdout
    assert "host=a" in done.stdout


def test_recoveries_are_listed_as_resolved_events(tmp_path, capsys):
    lp = data.write_lp(tmp_path / "cpu.lp")
    out = tmp_path / "alerts.jsonl"
    replay(lp, "--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS, "--alerts", out,
           "--notify-recovery", "true", "--recovery-count", "3")  # fmt: skip
    events = [(a["state"], a["tags"]["host"], a["time"]) for a in read_alerts(out)]
    # the third normal point after the last outlier ends an alert; the run of six is one alert
    assert events == [
        ("firing", "a", data.rfc3339(62)),
        ("resolved", "a", data.rfc3339(65)),
        ("firing", "a", data.rfc3339(142)),
        ("firing", "a", data.rfc3339(145)),
        ("resolved", "a", data.rfc3339(148)),
        ("firing", "b", data.rfc3339(152)),
        ("resolved", "b", data.rfc3339(155)),
    ]
    durations = [a["duration_s"] for a in read_alerts(out) if a["state"] == "resolved"]
    assert durations == [30.0, 60.0, 30.0]
    out_text = capsys.readouterr().out
    assert "4 alerts fired, 0 suppressed, 3 resolved" in out_text
    assert "7 notifications (none sent)" in out_text


def test_csv_with_a_byte_order_mark_is_read(tmp_path):
    csv_file = data.write_csv(tmp_path / "cpu.csv")
    csv_file.write_bytes(b"\xef\xbb\xbf" + csv_file.read_bytes())  # as spreadsheets save it
    out = tmp_path / "alerts.jsonl"
    replay(csv_file, "--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS, "--alerts", out)
    assert alert_keys(read_alerts(out)) == data.EXPECTED


def test_a_measurement_matching_nothing_names_the_tables_found(tmp_path, capsys):
    lp = data.write_lp(tmp_path / "cpu.lp")
    assert replay(lp, "--measurement", "cpux", "--mad-thresholds", data.THRESHOLDS) == 0
    assert "no rows of table 'cpux' in the input; its tables include: cpu" in (
        capsys.readouterr().err
    )


def test_plugin_warnings_are_shown_once_and_delivery_errors_capped(tmp_path, capsys):
    lines = data.lp_lines()
    lines[30] = 'cpu,host=c temp="hot" 1700000100'  # a string value: the plugin passes over it
    lines[60] = 'cpu,host=c temp="hot" 1700000200'
    lp = data.write_lp(tmp_path / "cpu.lp", lines)
    code = replay(
        lp, "--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS, "--send",
        "--port", free_port(), "--senders", "http", "--http-webhook-url", "http://127.0.0.1:9/h",
        "--notification-attempts", "1", "--max-errors-shown", "3", "--flush-interval", "1s",
    )  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    assert err.count("no influxdb3_auth_token") == 1
    assert err.count("value not numeric") == 1
    assert err.count("plugin ERROR: alert delivery failed") == 1
    # the first delivery failure is shown beside the two warnings, the later ones are counted
    # (how many there are depends on the outbox's backoff, which follows the data's time)
    hidden = re.search(r"(\d+) more plugin warnings or errors not shown", err)
    assert hidden is not None and int(hidden.group(1)) >= 1


def test_truncated_gzip_keeps_what_was_read_and_says_so(tmp_path, capsys):
    plain = data.write_lp(tmp_path / "cpu.lp")
    packed = gzip.compress(plain.read_bytes())
    cut = tmp_path / "cpu.lp.gz"
    cut.write_bytes(packed[: len(packed) * 3 // 4])  # an interrupted download
    out = tmp_path / "alerts.jsonl"
    assert replay(cut, "--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS,
                  "--alerts", out) == 0  # fmt: skip
    assert "compressed data truncated or corrupt" in capsys.readouterr().err
    assert alert_keys(read_alerts(out)) == data.EXPECTED[: len(alert_keys(read_alerts(out)))]
    assert read_alerts(out)  # the first alerts come from the part that was read


def test_duration_threshold_runs_on_the_datas_own_time(tmp_path):
    lp = data.write_lp(tmp_path / "cpu.lp")
    out = tmp_path / "alerts.jsonl"
    replay(lp, "--measurement", "cpu", "--mad-thresholds", "temp:3:20:30s", "--alerts", out)
    # points are 10 s apart: only the run of six spans 30 s (140 -> 143); the replay itself
    # takes far less than 30 s of wall-clock time
    alerts = read_alerts(out)
    assert alert_keys(alerts) == [("a", 143)]
    assert alerts[0]["rule"] == "duration" and alerts[0]["threshold"] == "30s"


def test_several_files_are_one_stream(tmp_path):
    lines = data.lp_lines()
    half = len(lines) // 2
    first = data.write_lp(tmp_path / "part1.lp", lines[:half])
    second = tmp_path / "part2.lp.gz"
    second.write_bytes(gzip.compress(("\n".join(lines[half:]) + "\n").encode()))
    out = tmp_path / "alerts.jsonl"
    replay(first, second, "--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS,
           "--alerts", out)  # fmt: skip
    assert alert_keys(read_alerts(out)) == data.EXPECTED


def test_replay_runs_without_rich_installed(monkeypatch, tmp_path, capsys):
    for name in [
        m for m in sys.modules if m == "rich" or m.startswith(("rich.", "madcheck.replay."))
    ]:
        if name != "madcheck.replay.command":
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "rich", None)  # import rich -> ImportError
    lp = data.write_lp(tmp_path / "cpu.lp")
    out = tmp_path / "alerts.jsonl"
    assert replay(lp, "--mad-thresholds", data.THRESHOLDS, "--no-progress", "--alerts", out) == 0
    assert alert_keys(read_alerts(out)) == data.EXPECTED
    assert "4 alerts fired" in capsys.readouterr().out


def test_measurement_is_needed_only_when_the_input_holds_several_tables(tmp_path, capsys):
    lines = data.lp_lines()
    lp = data.write_lp(tmp_path / "cpu.lp", lines)
    out = tmp_path / "alerts.jsonl"
    assert replay(lp, "--mad-thresholds", data.THRESHOLDS, "--alerts", out) == 0
    assert alert_keys(read_alerts(out)) == data.EXPECTED
    mixed = data.write_lp(tmp_path / "mixed.lp", ["mem,host=a used=1 1700000000", *lines])
    assert replay(mixed, "--mad-thresholds", data.THRESHOLDS) == 2
    assert "--measurement is needed: the input holds the tables cpu, mem" in (
        capsys.readouterr().err
    )


def test_help_shows_examples_for_replay_and_sweep(capsys):
    with pytest.raises(SystemExit):
        main(["replay", "--help"])
    text = capsys.readouterr().out
    assert "madcheck replay week.lp.gz --mad-thresholds temp:2.5:20:5" in text
    assert "--sweep k=2,2.5,3 window_count=10,20,50" in text


def test_a_csv_export_of_the_local_engine_replays_to_the_same_alerts(tmp_path):
    """The workflow the docs describe: data in the engine, exported with --format csv."""
    from madcheck.engine.formats import render
    from madcheck.engine.storage import Storage

    with Storage(tmp_path / "data") as storage:
        storage.write_lp("mydb", "\n".join(data.lp_lines()), no_sync=True)
        rows = storage.query("mydb", "SELECT * FROM cpu ORDER BY time, host")
    export = tmp_path / "export.csv"
    export.write_text(render(rows, "csv"))
    out = tmp_path / "alerts.jsonl"
    assert replay(export, "--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS,
                  "--alerts", out) == 0  # fmt: skip
    assert alert_keys(read_alerts(out)) == data.EXPECTED


def test_noise_control_shows_inhibited_alerts_in_the_summary_alerts_file_and_report(
    tmp_path, capsys
):
    """A warning and a critical condition fire on the same points: only the critical alerts are
    notified, the warnings are recorded as inhibited, and the replay says so everywhere."""
    lp = data.write_lp(tmp_path / "cpu.lp")
    out, report = tmp_path / "alerts.jsonl", tmp_path / "report.html"
    thresholds = f"{data.THRESHOLDS}@temp:5:20:3:critical"
    code = replay(lp, "--mad-thresholds", thresholds, "--alerts", out, "--report", report)
    assert code == 0
    alerts = read_alerts(out)
    critical = [a for a in alerts if a["severity"] == "critical"]
    warnings = [a for a in alerts if a["severity"] == "warning"]
    assert alert_keys(critical) == data.EXPECTED
    assert {a["state"] for a in critical} == {"firing"}
    assert alert_keys(warnings) == data.EXPECTED
    assert {a["state"] for a in warnings} == {"inhibited"}
    summary = capsys.readouterr().out
    assert "4 alerts fired, 0 suppressed, 4 inhibited" in summary
    assert "4 notifications (none sent)" in summary
    page = report.read_text()
    assert "4 inhibited" in page
    assert ">inhibited<" in page


def test_grouping_follows_the_data_time_of_the_replay(tmp_path, capsys):
    """group_wait is measured on the outbox clock, which a replay sets to the data's time: host
    a's alerts at 620 s and 1,420 s after the start are 800 s apart, more than a 5-minute wait,
    so they make two notifications (1,450 s joins the second), host b's one more."""
    lp = data.write_lp(tmp_path / "cpu.lp")
    code = replay(
        lp, "--mad-thresholds", data.THRESHOLDS, "--group-by", "host", "--group-wait", "5m"
    )
    assert code == 0
    summary = capsys.readouterr().out
    assert "4 alerts fired, 0 suppressed" in summary
    assert "3 notifications (none sent)" in summary


def test_silences_and_maintenance_windows_are_replayed(tmp_path, capsys):
    """A silence written as line protocol (``--silences``) and a ``[[maintenance]]`` window of
    the TOML file (``--config``) keep their alerts from being sent, as in a server."""
    lp = data.write_lp(tmp_path / "cpu.lp")
    silences = tmp_path / "silences.lp"
    silences.write_text(
        'mad_silences,id=deploy match="host=b",ends_at="2030-01-01T00:00:00Z",'
        'starts_at="2020-01-01T00:00:00Z",comment="[/x] deploy" 1700000000000000000\n'
        "cpu,host=z temp=1 1700000000000000000\n",  # another table: ignored
        encoding="utf-8",
    )
    config = tmp_path / "mad.toml"
    config.write_text(
        'state_change_count = 0\n\n[[maintenance]]\nmatch = "host=a"\ndays = "Mon-Sun"\n'
        'from = "00:00"\nto = "24:00"\ntimezone = "UTC"\n',
        encoding="utf-8",
    )
    out = tmp_path / "alerts.jsonl"
    code = replay(lp, "--mad-thresholds", data.THRESHOLDS, "--silences", silences,
                  "--config", config, "--alerts", out)  # fmt: skip
    assert code == 0
    alerts = read_alerts(out)
    assert alert_keys(alerts) == data.EXPECTED
    assert {a["tags"]["host"]: a["state"] for a in alerts} == {"a": "silenced", "b": "silenced"}
    summary = capsys.readouterr().out
    assert "0 alerts fired, 0 suppressed, 4 silenced" in summary
    assert "not sent" in summary.splitlines()[1]  # the series table's column of held alerts
    assert "0 notifications (none sent)" in summary
    assert "PLUGIN_DIR" not in os.environ  # the replay's own plugin dir is gone with it


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('mad_silences,id=x match="host=a" ends_at=1\n', "--silences"),  # no comma between fields
        ("mad_silences,id=x match=\n", "line 1"),
        (b"\xff\xfe".decode("latin-1"), "not UTF-8"),
    ],
)
def test_a_silences_file_the_replay_cannot_read_is_a_clear_error(
    tmp_path, capsys, content, message
):
    lp = data.write_lp(tmp_path / "cpu.lp")
    silences = tmp_path / "silences.lp"
    silences.write_bytes(content.encode("latin-1"))
    assert replay(lp, "--mad-thresholds", data.THRESHOLDS, "--silences", silences) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "table",
    [
        '[[maintenance]]\nmatch = "host=a"\ndays = ["Mon"]\n',  # not text
        '[[maintenance]]\n"a b" = "x"\n',  # not a plain name
        "maintenance = 3\n",
    ],
)
def test_maintenance_tables_the_replay_cannot_pass_on_are_refused(tmp_path, capsys, table):
    lp = data.write_lp(tmp_path / "cpu.lp")
    config = tmp_path / "mad.toml"
    config.write_text(table, encoding="utf-8")
    assert replay(lp, "--mad-thresholds", data.THRESHOLDS, "--config", config) == 2
    err = capsys.readouterr().err
    assert "maintenance" in err
    assert "Traceback" not in err


def _deliveries(rows: list[dict], capture: CaptureClient | None) -> tuple[int, int, list[str]]:
    """(notifications queued, requests the stand-in endpoint answered, history lines) of one
    replayed trigger fed ``rows`` in two calls."""
    catalog = SchemaQueries()
    catalog.add_columns("cpu", ["host"], ["temp"])
    with CaptureEndpoint() as endpoint:
        arguments = trigger_arguments(
            {"measurement": "cpu", "mad_thresholds": data.THRESHOLDS, "notify_recovery": "true"},
            capture_port=endpoint.port,
        )
        assert is_captured(arguments)
        plugin = default_plugin()
        assert plugin is not None
        trigger = ReplayTrigger(plugin, arguments, "cpu", catalog, lambda record: None,
                                capture=capture)  # fmt: skip
        history = [record.alert_id + record.state for record in trigger.call(rows[:300])]
        history += [record.alert_id + record.state for record in trigger.call(rows[300:])]
        queued = trigger.finish(30.0)
        return queued, endpoint.posted, history


def test_without_send_notifications_are_taken_in_process_as_the_endpoint_takes_them():
    """The capture client stands in for the HTTP stand-in: the plugin's outbox delivers every
    notification to it (none is posted), as many as it posts to the endpoint without it."""
    rows = [
        {"host": host, "temp": data.value(host, i), "time": data.time_s(i) * 10**9}
        for i in range(data.POINTS)
        for host in data.INJECTED
    ]
    capture = CaptureClient()
    queued, posted, history = _deliveries(rows, capture)
    assert queued == 7  # 4 alerts, 3 recoveries
    assert (capture.taken, posted) == (queued, 0)
    over_http = _deliveries(rows, None)
    assert over_http == (queued, queued, history)


def test_send_arguments_are_not_captured():
    given = {"measurement": "cpu", "mad_thresholds": data.THRESHOLDS, "senders": "http",
             "http_webhook_url": "http://127.0.0.1:9/hook", "port_override": "8181"}  # fmt: skip
    assert not is_captured(trigger_arguments(given))
    assert is_captured(trigger_arguments(given, capture_port=9))


def test_send_with_the_stand_in_token_is_refused_rather_than_captured(tmp_path, capsys):
    lp = data.write_lp(tmp_path / "cpu.lp")
    code = replay(
        lp, "--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS, "--send",
        "--port", free_port(), "--token", "madcheck-replay",
        "--senders", "http", "--http-webhook-url", "http://127.0.0.1:9/hook",
    )  # fmt: skip
    assert code == 2
    assert "stand-in" in capsys.readouterr().err
