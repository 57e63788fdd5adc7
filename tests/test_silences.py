"""Silences (issue 15): rows of ``mad_silences`` that keep matching alerts from being sent.

Alert times follow test_plugin_writes: the second outlier of ``anomaly_batch`` is at
2023-11-14T22:15:00Z (T0 + 100 s), the moment its alert fires.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
import requests

from madcheck.engine.api import EngineAPI
from madcheck.engine.cache import TriggerCache
from madcheck.engine.storage import Storage
from madcheck.plugin.silences import MAX_SILENCE_ROWS
from madcheck.route.silences import (
    MAX_MATCH_CHARS,
    SilenceError,
    SilenceSet,
    glob_match,
    parse_matchers,
    parse_rfc3339_ns,
)
from tests.datafusion_engine import DataFusionQueries
from tests.engine_harness import ServeProcess, admin_auth, query, run_cli, wait_for
from tests.support import MAD_PLUGIN, make_engine, receiver, rows, run_and_settle
from tests.test_alert_history import history, tags_of
from tests.test_plugin_writes import BASE, args_for

T0_NS = 1_700_000_000 * 10**9
FIRES_AT = "2023-11-14T22:15:00Z"


def silence_lp(ident, match, ends_at, starts_at=None, time_ns=T0_NS, table="mad_silences"):
    fields = [f'match="{match}"', f'ends_at="{ends_at}"']
    if starts_at:
        fields.append(f'starts_at="{starts_at}"')
    return f"{table},id={ident} {','.join(fields)} {time_ns}"


def datafusion_engine(*lines: str) -> tuple[EngineAPI, DataFusionQueries]:
    queries = DataFusionQueries()
    queries.write_lp("cpu,host=seed temp=1 1")  # the monitored table exists
    for line in lines:
        queries.write_lp(line)
    return EngineAPI(database="mydb", query_handler=queries, cache=TriggerCache()), queries


def states(engine):
    return [tags_of(w.line)["state"] for w in history(engine)]


def batch(**tags):
    return [rows("cpu", [*BASE, 100, 100], **tags)]


# -- matchers, times, rows -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("web1", "web1", True),
        ("web*", "web12", True),
        ("*1", "web1", True),
        ("w*b*1", "web1", True),
        ("web", "web1", False),
        ("*", "", True),
        ("a?c", "abc", False),  # only * is special
        ("[ab]", "a", False),
        ("[ab]", "[ab]", True),
    ],
)
def test_glob_matching(pattern, text, matches):
    assert glob_match(pattern, text) is matches


def test_a_pathological_pattern_is_answered_without_backtracking_blowup():
    # a backtracking matcher takes len(pattern) * len(text) steps or worse on these
    assert glob_match("*a" * 100 + "b", "a" * 1_000_000) is False
    assert glob_match("*" + "a" * 255 + "b", "a" * 1_000_000) is False
    assert glob_match("*a*b*a*", "xaybza") is True and glob_match("a*a", "a") is False


@pytest.mark.parametrize(
    "hostile",
    [
        "",
        ";;;",
        "host",
        "=web1",
        "host=web1\nregion=eu",
        "h=" + "x" * 300,
        ";".join(f"k{i}=v" for i in range(33)),
        "k=" + "v" * MAX_MATCH_CHARS,
    ],
)
def test_hostile_match_strings_are_refused_with_a_reason(hostile):
    with pytest.raises(SilenceError):
        parse_matchers(hostile)


@pytest.mark.parametrize(
    "bad",
    [
        "tomorrow",
        "2026-12-01T00:00:00",  # no zone
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-12-01T00:00:00+25:00",
        "0000-01-01T00:00:00Z",
        "2026-12-01T00:00:00Z" + " " * 100,
        "9" * 1000,
    ],
)
def test_bad_timestamps_are_refused(bad):
    with pytest.raises(SilenceError):
        parse_rfc3339_ns(bad)


def test_rfc3339_with_offsets_and_fractions():
    assert parse_rfc3339_ns("2023-11-14T22:15:00Z") == T0_NS + 100 * 10**9
    assert parse_rfc3339_ns("2023-11-14T23:15:00.5+01:00") == T0_NS + 100 * 10**9 + 5 * 10**8


def test_the_latest_row_of_an_id_wins_whatever_the_order():
    rows_ = [
        {"id": "s", "time": 2, "match": "host=a", "ends_at": "2000-01-01T00:00:00Z"},
        {"id": "s", "time": 1, "match": "host=a", "ends_at": "2999-01-01T00:00:00Z"},
    ]
    (silence,) = SilenceSet.from_rows(rows_).silences
    assert silence.ends_ns == parse_rfc3339_ns("2000-01-01T00:00:00Z")


def test_broken_rows_are_reported_and_do_not_hide_good_ones():
    found = SilenceSet.from_rows(
        [
            {"id": "good", "time": 1, "match": "host=a", "ends_at": "2999-01-01T00:00:00Z"},
            {"id": "bad_time", "time": 1, "match": "host=a", "ends_at": "soon"},
            {"id": "bad_match", "time": 1, "match": "host", "ends_at": "2999-01-01T00:00:00Z"},
            {"id": "no_match", "time": 1, "ends_at": "2999-01-01T00:00:00Z"},
            {"time": 1, "match": "host=a"},
            {"id": ["not", "text"], "time": 1},
        ]
    )
    assert [s.id for s in found.silences] == ["good"]
    assert len(found.problems) == 5


# -- through the plugin, on DataFusion -------------------------------------------------------


def test_a_matching_silence_keeps_the_alert_from_being_sent_and_records_it_silenced():
    engine, queries = datafusion_engine(
        silence_lp("deploy", "host=web*;table=cpu", "2023-11-14T23:00:00Z")
    )
    with receiver() as notifier:
        run_and_settle(engine, batch(host="web1"), args_for(notifier.port))
        run_and_settle(engine, batch(host="db1"), args_for(notifier.port))
    assert [r.body["alert"]["tags"]["host"] for r in notifier.requests] == ["db1"]
    assert states(engine) == ["silenced", "firing"]
    (line,) = [text for text in engine.log_texts("INFO") if "silenced" in text]
    assert "1 alert(s) silenced, not sent: silence deploy (host=web*;table=cpu" in line
    assert queries.failed == []
    assert any('FROM "mad_silences" ORDER BY time DESC LIMIT' in sql for sql in queries.sent)


def test_a_silence_covers_data_time_only_between_its_start_and_end():
    engine, _ = datafusion_engine(
        silence_lp("late", "host=a", "2023-11-15T00:00:00Z", starts_at="2023-11-14T22:20:00Z"),
        silence_lp("over", "host=a", "2023-11-14T22:14:00Z", time_ns=T0_NS - 10**12),
    )
    with receiver() as notifier:
        run_and_settle(engine, batch(host="a"), args_for(notifier.port))
    assert len(notifier.requests) == 1 and states(engine) == ["firing"]


def test_writing_the_id_again_with_a_past_end_ends_the_silence():
    engine, _ = datafusion_engine(
        silence_lp("s1", "host=a", "2023-11-15T00:00:00Z"),
        silence_lp("s1", "host=a", "2023-11-14T22:00:00Z", time_ns=T0_NS + 10**9),
    )
    with receiver() as notifier:
        run_and_settle(engine, batch(host="a"), args_for(notifier.port))
    assert len(notifier.requests) == 1


def test_no_silences_table_is_no_error_and_an_empty_argument_turns_them_off():
    engine, _ = datafusion_engine()
    with receiver() as notifier:
        run_and_settle(engine, batch(host="a"), args_for(notifier.port))
        assert len(notifier.requests) == 1
        assert engine.log_texts("WARN") == [] and engine.log_texts("ERROR") == []
        off, off_queries = datafusion_engine(silence_lp("s", "host=a", "2999-01-01T00:00:00Z"))
        run_and_settle(off, batch(host="a"), args_for(notifier.port, silences_table=""))
    assert len(notifier.requests) == 2
    assert not any("mad_silences" in sql for sql in off_queries.sent)


def test_silences_are_read_at_most_once_per_refresh_period():
    engine, queries = datafusion_engine()
    with receiver() as notifier:
        args = args_for(notifier.port, silences_refresh="1h")
        run_and_settle(engine, batch(host="a"), args)
        asked = len(queries.sent)
        queries.write_lp(silence_lp("s", "host=a", "2999-01-01T00:00:00Z"))
        run_and_settle(engine, [rows("cpu", [100, 100], start_s=1_700_000_110, host="a")], args)
        assert len(notifier.requests) == 2  # the silence was written after the cached read
        asked_again = queries.sent[asked:]
        fresh, _ = datafusion_engine(silence_lp("s", "host=a", "2999-01-01T00:00:00Z"))
        run_and_settle(fresh, batch(host="a"), args_for(notifier.port, silences_refresh="0"))
    assert "SHOW TABLES" not in asked_again
    assert not any("mad_silences" in sql for sql in asked_again)
    assert states(fresh) == ["silenced"]


def test_a_flooded_silences_table_is_read_only_up_to_its_bound():
    flood = "\n".join(
        silence_lp(f"junk{i}", "host=nobody", "2999-01-01T00:00:00Z", time_ns=T0_NS - i * 10**9)
        for i in range(MAX_SILENCE_ROWS + 50)
    )
    engine, _ = datafusion_engine(
        flood, silence_lp("real", "host=a", "2999-01-01T00:00:00Z", time_ns=T0_NS + 1)
    )
    with receiver() as notifier:
        run_and_settle(engine, batch(host="a"), args_for(notifier.port))
    assert notifier.requests == [] and states(engine) == ["silenced"]
    assert any(f"more than {MAX_SILENCE_ROWS} rows" in t for t in engine.log_texts("WARN"))


def test_a_broken_silence_row_is_logged_once_and_the_alert_sent():
    engine, _ = datafusion_engine(silence_lp("oops", "host=a", "next tuesday"))
    with receiver() as notifier:
        args = args_for(notifier.port, silences_refresh="0")
        run_and_settle(engine, batch(host="a"), args)
        run_and_settle(engine, [rows("cpu", [100, 100], start_s=1_700_000_110, host="a")], args)
    assert len(notifier.requests) == 2
    (warning,) = [t for t in engine.log_texts("WARN") if "silence row" in t]
    assert "oops" in warning and "RFC 3339" in warning


@pytest.mark.parametrize("table", ["bad table", "#x", "a\\b", "cpu"])
def test_an_unusable_silences_table_name_is_a_config_error(table):
    engine = make_engine()
    with receiver() as notifier:
        run_and_settle(engine, batch(host="a"), args_for(notifier.port, silences_table=table))
    assert notifier.requests == []
    assert any("silences_table" in t for t in engine.log_texts("ERROR"))


# -- the local engine's storage --------------------------------------------------------------


def test_silences_on_the_local_engine_storage(tmp_path: Path):
    store = Storage(tmp_path)
    try:
        lines = ["cpu,host=seed temp=1 1", silence_lp("s", "host=a", "2999-01-01T00:00:00Z")]
        assert store.write_lp("mydb", "\n".join(lines), precision="ns").errors == []
        engine = EngineAPI(
            database="mydb",
            query_handler=lambda sql, params, db: store.query(db, sql, params),
            cache=TriggerCache(),
        )
        with receiver() as notifier:
            run_and_settle(engine, batch(host="a"), args_for(notifier.port))
            run_and_settle(engine, batch(host="b"), args_for(notifier.port))
    finally:
        store.close()
    assert states(engine) == ["silenced", "firing"]
    assert engine.log_texts("WARN") == []


# -- the command line against madcheck serve -------------------------------------------------


def test_silence_add_list_expire_against_madcheck_serve(tmp_path: Path):
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    with ServeProcess(tmp_path / "data", plugin_dir) as server:
        _, auth = admin_auth(server.url)
        connection = ("--host", server.url, *auth, "--database", "mydb")
        assert (
            run_cli("write", "--host", server.url, *auth, "-d", "mydb", "cpu t=1").returncode == 0
        )
        empty = run_cli("silence", "list", *connection)  # no table yet: nothing silenced
        assert empty.returncode == 0 and "no silences in force" in empty.stdout
        added = run_cli(
            "silence", "add", *connection, "--match", "host=web1", "--for", "2h",
            "--comment", 'deploy "v2"',
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        ident = added.stdout.strip()
        listed = run_cli("silence", "list", *connection)
        assert ident in listed.stdout and "host=web1" in listed.stdout
        assert 'deploy "v2"' in listed.stdout
        expired = run_cli("silence", "expire", *connection, ident)
        assert expired.returncode == 0, expired.stderr
        after = run_cli("silence", "list", *connection)
        assert ident not in after.stdout
        assert ident in run_cli("silence", "list", *connection, "--all").stdout
        unknown = run_cli("silence", "expire", *connection, "nope")
        bad = run_cli("silence", "add", *connection, "--match", "host", "--for", "2h")
    assert unknown.returncode == 1 and "no silence 'nope'" in unknown.stderr
    assert bad.returncode == 1 and "key=value" in bad.stderr


def test_a_silence_added_by_the_cli_silences_the_trigger_on_madcheck_serve(tmp_path: Path):
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    shutil.copy(MAD_PLUGIN, plugin_dir / "mad_check_plugin.py")
    with receiver() as notifier, ServeProcess(tmp_path / "data", plugin_dir) as server:
        token, auth = admin_auth(server.url)
        base = ",".join(
            f"{k}={v}"
            for k, v in args_for(notifier.port, silences_refresh="0", warm_start="false").items()
            if k != "influxdb3_auth_token"
        )
        created = run_cli(
            "create", "trigger", *auth, "--database", "mydb", "--plugin-filename",
            "mad_check_plugin.py", "--trigger-spec", "all_tables", "--trigger-arguments", base,
            "mad",
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        added = run_cli(
            "silence", "add", *auth, "--database", "mydb", "--match", "host=web*", "--for", "1h"
        )
        assert added.returncode == 0, added.stderr
        now_s = int(time.time()) + 1
        lines = [
            f"cpu,host={host} temp={value} {(now_s + i) * 10**9}"
            for host in ("web1", "db1")
            for i, value in enumerate([*BASE, 100, 100])
        ]
        wrote = run_cli("write", *auth, "-d", "mydb", "--precision", "ns", "\n".join(lines))
        assert wrote.returncode == 0, wrote.stderr

        def rows_by_host():
            sql = "SELECT host, state FROM mad_alerts ORDER BY host"
            try:
                return query(server.url, "mydb", sql, token)
            except requests.HTTPError:  # no alert row written yet: no table
                return []

        recorded = wait_for(lambda: len(rows_by_host()) == 2 and rows_by_host(), "alert rows")
        wait_for(lambda: notifier.requests, "the db1 alert")
    assert recorded == [{"host": "db1", "state": "firing"}, {"host": "web1", "state": "silenced"}]
    assert [r.body["alert"]["tags"]["host"] for r in notifier.requests] == ["db1"]
