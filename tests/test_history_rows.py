"""History rows InfluxDB 3 accepts, whatever the series' tags hold (issue 12).

The engine applies a call's writes with ``accept_partial=false``: these tests apply exactly what
the plugin wrote in one call the same way and check that every row arrives.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from madcheck.engine.api import EngineAPI
from madcheck.engine.cache import TriggerCache
from madcheck.engine.lineprotocol import parse_line
from madcheck.engine.loader import load_entry_point
from madcheck.engine.storage import Storage
from madcheck.plugin.delivery import wait_for_sender
from madcheck.plugin.history import history_tags
from tests.datafusion_engine import DataFusionQueries
from tests.support import (
    DELIVERY_WAIT_S,
    MAD_PLUGIN,
    free_port,
    make_engine,
    receiver,
    rows,
    run_mad_plugin,
)
from tests.test_plugin_writes import BASE, args_for

ODD_TAGS = {
    "host name": "web 1",
    "re,gion": "eu,west",
    "k=v": "a=b",
    "温度": "värme ☃",
    "back\\slash": "ends with \\",
    "line": "two\nlines",
    "empty": "",
    "value": "tag called value",
}


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    store = Storage(tmp_path / "data")
    yield store
    store.close()


def _history_lines(engine) -> list[str]:
    return [w.line for w in engine.writes if w.line.startswith("mad_alerts")]


def _apply_like_the_engine(storage: Storage, lines: list[str]) -> None:
    result = storage.write_lp("mydb", "\n".join(lines), precision="ns", accept_partial=False)
    assert result.errors == []


def test_series_tags_with_spaces_commas_equals_unicode_backslashes_and_empties_are_written(
    storage: Storage,
) -> None:
    engine = make_engine({"cpu": {"tags": list(ODD_TAGS), "fields": ["temp"]}})
    run_mad_plugin(engine, [rows("cpu", [*BASE, 100, 100], **ODD_TAGS)], args_for(free_port()))
    (line,) = _history_lines(engine)
    _apply_like_the_engine(storage, [line])
    (row,) = storage.query("mydb", "SELECT * FROM mad_alerts")
    assert row["host_name"] == "web 1"
    assert row["re_gion"] == "eu,west"
    assert row["k_v"] == "a=b"
    assert row["温度"] == "värme ☃"
    assert row["back_slash"] == "ends with \\"
    assert row["line"] == "two lines"
    assert "empty" not in row  # line protocol has no empty tag value
    assert row["tag_value"] == "tag called value" and row["value"] == 100.0
    assert row["field"] == "temp" and row["state"] == "firing"


def test_keys_made_equal_by_sanitising_stay_apart() -> None:
    written = history_tags((("a b", "1"), ("a_b", "2"), ("a=b", "3"), ("", "4"), ("time", "5")))
    assert written == [("a_b", "1"), ("tag_a_b", "2"), ("tag_tag_a_b", "3"), ("_", "4"),
                       ("tag_time", "5")]  # fmt: skip


def test_one_unwritable_row_costs_no_other_row_of_the_call(storage: Storage) -> None:
    engine = make_engine()
    too_late = 2**63 // 10**9  # seconds: the rows' ns times overflow int64
    batch = [
        rows("cpu", [*BASE, 100, 100], host="fine"),
        rows("cpu", [*BASE, 100, 100], start_s=too_late, host="broken"),
        rows("cpu", [*BASE, 100, 100], host="also fine"),
    ]
    run_mad_plugin(engine, batch, args_for(free_port()))
    lines = _history_lines(engine)
    assert len(lines) == 2
    _apply_like_the_engine(storage, lines)
    hosts = sorted(r["host"] for r in storage.query("mydb", "SELECT host FROM mad_alerts"))
    assert hosts == ["also fine", "fine"]
    (warning,) = [t for t in engine.log_texts("WARN") if "could not write" in t]
    assert "could not write 1 alert(s) to mad_alerts: UnwritableHistoryRow" in warning


@pytest.mark.parametrize("table", ["my alerts", "#alerts", "a\\b", "tab\there", "two\nlines"])
def test_an_alerts_table_the_engine_cannot_write_is_refused_when_the_config_loads(
    table: str,
) -> None:
    engine = make_engine()
    run_mad_plugin(
        engine,
        [rows("cpu", [*BASE, 100, 100], host="a")],
        args_for(free_port(), alerts_table=table),
    )
    (error,) = engine.log_texts("ERROR")
    assert "alerts_table" in error and "cannot be written by the engine" in error
    assert engine.writes == []


def test_a_unicode_alerts_table_is_fine(storage: Storage) -> None:
    engine = make_engine()
    args = args_for(free_port(), alerts_table="alertes_médicales,v2")
    run_mad_plugin(engine, [rows("cpu", [*BASE, 100, 100], host="a")], args)
    (write,) = engine.writes
    assert parse_line(write.line, "ns").measurement == "alertes_médicales,v2"
    _apply_like_the_engine(storage, [write.line])


def test_missing_data_rows_sanitise_tag_keys_like_the_alert_rows(storage: Storage) -> None:
    """``gap_history_line`` takes the same path: keys the engine's LineBuilder refuses, a tag
    named like a history column, unicode; applied all or nothing as the engine applies them."""
    queries = DataFusionQueries()
    t0 = 1_700_000_000 * 10**9
    queries.write_lp(
        f"cpu,host\\ name=web\\ 1,re\\,gion=eu\\,west,k\\=v=a\\=b,温度=värme,state=tag\\ state "
        f"temp=1 {t0}"
    )
    engine = EngineAPI(database="mydb", query_handler=queries, cache=TriggerCache())
    with receiver() as notifier:
        arguments = {**args_for(notifier.port), "missing_after": "5m"}
        load_entry_point(MAD_PLUGIN, "process_scheduled_call")(
            engine, datetime.fromtimestamp(t0 // 10**9 + 600, tz=UTC), arguments
        )
        assert wait_for_sender(engine, DELIVERY_WAIT_S)
    assert queries.failed == [] and not engine.log_texts("ERROR"), engine.log_texts()
    (line,) = _history_lines(engine)
    _apply_like_the_engine(storage, [line])
    (row,) = storage.query("mydb", "SELECT * FROM mad_alerts")
    assert (row["host_name"], row["re_gion"], row["k_v"], row["温度"]) == (
        "web 1",
        "eu,west",
        "a=b",
        "värme",
    )
    assert row["tag_state"] == "tag state" and row["state"] == "firing"
    assert row["rule"] == "missing" and row["duration_s"] == 600.0
