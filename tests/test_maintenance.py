"""Maintenance windows (issue 15): recurring quiet periods from the TOML file.

2023-11-14T22:15:00Z, when ``anomaly_batch``'s alert fires, is a Tuesday, 23:15 in Berlin (CET).
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfoNotFoundError

import pytest

from madcheck.config.settings import ConfigError, load_config
from madcheck.config.thresholds import Threshold
from madcheck.detect.alerts import Alert
from madcheck.route.maintenance import (
    MaintenanceError,
    parse_days,
    parse_windows,
    window_covering,
)
from tests.support import make_engine, receiver, rows, run_and_settle
from tests.test_alert_history import history, tags_of
from tests.test_plugin_writes import BASE, args_for


def alert_at(text: str, **tags: str) -> Alert:
    moment = datetime.fromisoformat(text).astimezone(UTC)
    return Alert(
        table="cpu",
        field="temp",
        tags=tuple(sorted((tags or {"region": "eu"}).items())),
        threshold=Threshold("temp", 3.0, 9, count=2),
        value=100.0,
        median=11.0,
        mad=1.0,
        time_ns=int(moment.timestamp()) * 10**9,
    )


def windows(**table):
    return parse_windows([{"match": "region=eu", **table}])


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("Mon-Fri", {0, 1, 2, 3, 4}),
        ("Sat,Sun", {5, 6}),
        ("Fri-Mon", {4, 5, 6, 0}),
        ("mon-wed,FRI", {0, 1, 2, 4}),
        ("Tuesday", {1}),
        ("*", set(range(7))),
    ],
)
def test_days(text, days):
    assert parse_days(text) == days


@pytest.mark.parametrize(
    ("moment", "inside"),
    [
        ("2023-11-14T23:15:00+01:00", True),  # Tuesday evening, Berlin
        ("2023-11-15T00:30:00+01:00", True),  # Wednesday morning: the same window, past midnight
        ("2023-11-15T01:00:00+01:00", False),  # its end is not in it
        ("2023-11-14T22:59:00+01:00", False),
        ("2023-11-15T23:15:00+01:00", False),  # Wednesday evening: not a listed day
        ("2023-11-14T00:30:00+01:00", False),  # Tuesday morning belongs to Monday's window
    ],
)
def test_a_window_across_midnight_in_its_own_zone(moment, inside):
    found = windows(days="Tue", **{"from": "23:00", "to": "01:00"}, timezone="Europe/Berlin")
    assert (window_covering(found, alert_at(moment)) is not None) is inside


def test_a_window_follows_its_zone_not_utc():
    # 02:30 in Berlin is 01:30Z; a UTC window 02:00-03:00 would not cover it
    berlin = windows(days="Mon-Fri", **{"from": "02:00", "to": "03:00"}, timezone="Europe/Berlin")
    utc = windows(days="Mon-Fri", **{"from": "02:00", "to": "03:00"})
    alert = alert_at("2023-11-14T01:30:00+00:00")
    assert window_covering(berlin, alert) is not None and window_covering(utc, alert) is None


def test_only_matching_series_are_in_a_window():
    found = windows(**{"from": "00:00", "to": "24:00"})
    assert window_covering(found, alert_at("2023-11-14T12:00:00+00:00", region="us")) is None
    assert window_covering(found, alert_at("2023-11-14T12:00:00+00:00", region="eu")) is not None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"from": "25:00", "to": "03:00"}, "from is not a time of day"),
        ({"from": "02:60", "to": "03:00"}, "from is not a time of day"),
        ({"from": "24:00", "to": "03:00"}, "from is not a time of day"),
        ({"from": "2am", "to": "03:00"}, "from must be a time of day"),
        ({"from": "02:00", "to": "02:00"}, "the window would be empty"),
        ({"from": "02:00", "to": "03:00", "days": "Mon-Funday"}, "not a weekday"),
        ({"from": "02:00", "to": "03:00", "timezone": "Mars/Olympus"}, "timezone is not known"),
        ({"from": "02:00", "to": "03:00", "timezone": "../../etc/passwd"}, "timezone"),
        ({"from": "02:00", "to": "03:00", "secret_key": "hunter2"}, "1 unknown key(s)"),
        ({"from": "02:00", "to": "03:00", "match": "region"}, "match must be matchers"),
    ],
)
def test_bad_windows_are_clear_errors_that_repeat_nothing_of_the_file(table, message):
    with pytest.raises(MaintenanceError) as raised:
        parse_windows([{"match": "region=eu", **table}])
    text = str(raised.value)
    assert message in text and text.startswith("maintenance window 1")
    assert "hunter2" not in text and "secret_key" not in text and "Olympus" not in text


def test_a_missing_time_zone_database_is_a_config_error_saying_how_to_fix_it():
    def no_database(name: str):
        raise ZoneInfoNotFoundError(f"No time zone found with key {name}")

    with pytest.raises(MaintenanceError, match="install the tzdata package"):
        parse_windows(
            [{"match": "region=eu", "from": "02:00", "to": "03:00", "timezone": "Europe/Berlin"}],
            loader=no_database,
        )
    # UTC needs no database
    assert parse_windows([{"match": "a=b", "from": "02:00", "to": "03:00"}], loader=no_database)


def test_maintenance_as_a_trigger_argument_is_refused():
    with pytest.raises(ConfigError, match="set in the TOML file"):
        load_config({**args_for(1), "maintenance": "region=eu"}, {})


# -- through the plugin ----------------------------------------------------------------------


def test_alerts_inside_a_window_from_the_toml_file_are_silenced(tmp_path, monkeypatch):
    (tmp_path / "mad.toml").write_text(
        """
[[maintenance]]
match = "region=eu"
days = "Tue"
from = "23:00"
to = "01:00"
timezone = "Europe/Berlin"
"""
    )
    monkeypatch.setenv("PLUGIN_DIR", str(tmp_path))
    engine = make_engine({"cpu": {"tags": ["region"], "fields": ["temp"]}})
    with receiver() as notifier:
        args = args_for(notifier.port, config_file_path="mad.toml")
        run_and_settle(engine, [rows("cpu", [*BASE, 100, 100], region="eu")], args)
        run_and_settle(engine, [rows("cpu", [*BASE, 100, 100], region="us")], args)
    assert [r.body["alert"]["tags"]["region"] for r in notifier.requests] == ["us"]
    assert [tags_of(w.line)["state"] for w in history(engine)] == ["silenced", "firing"]
    (line,) = [t for t in engine.log_texts("INFO") if "silenced" in t]
    assert "maintenance window 1 (Tue 23:00-01:00 Europe/Berlin) x1" in line
