"""What a steady-state call reuses or skips (docs/performance.md, "the per-call fixed cost")
still notices every change it must and still says everything it said.

Each test here aims at one shortcut: a change the shortcut could miss, made the way a user (or
the engine) would make it.
"""

from __future__ import annotations

import os
import re

import pytest

from madcheck.config.thresholds import Threshold
from madcheck.detect.detector import SKIP_BAD_ROW, SKIP_BAD_TIME, Detector
from madcheck.engine.api import EngineAPI
from madcheck.plugin.calllog import CallLog
from madcheck.plugin.delivery import STATE_KEY
from madcheck.plugin.trigger_state import Fingerprint, RecordingEnviron
from tests.support import make_engine, rows, run_mad_plugin

BASE = {
    "measurement": "cpu",
    "mad_thresholds": "temp:3:9:2",
    "senders": "http",
    "http_webhook_url": "http://127.0.0.1:9/hooks/alerts",
    "warm_start": "false",
}
CALL_ID = re.compile(r"^\[mad_check ([0-9a-f]{6})\] ")


def loads(engine: EngineAPI) -> int:
    return sum("configuration loaded" in line for line in engine.log_texts("INFO"))


def call(engine: EngineAPI, args: object, **tags: str) -> None:
    run_mad_plugin(engine, [rows("cpu", [1.0], host="a", **tags)], args)  # type: ignore[arg-type]


# -- the fingerprint: stored environment values, arguments without a copy ---------------------


def test_a_default_variable_set_changed_and_unset_rebuilds_the_config_each_time(monkeypatch):
    # TWILIO_SID is looked up by every config (a documented default), so the stored-value
    # comparison covers it on every call
    monkeypatch.delenv("TWILIO_SID", raising=False)
    engine = make_engine()
    call(engine, BASE)
    call(engine, BASE)
    assert loads(engine) == 1
    os.environ["TWILIO_SID"] = "AC0001"  # set through os.environ, as the engine's process would
    try:
        call(engine, BASE)
        assert loads(engine) == 2
        os.environ["TWILIO_SID"] = "AC0001-é"  # a value that encodes to more bytes than chars
        call(engine, BASE)
        assert loads(engine) == 3
        os.environ["TWILIO_SID"] = "AC0001-é"  # the same value again: nothing to rebuild
        call(engine, BASE)
        assert loads(engine) == 3
    finally:
        del os.environ["TWILIO_SID"]
    call(engine, BASE)
    assert loads(engine) == 4


def test_a_replaced_environment_mapping_is_compared_value_by_value(monkeypatch):
    monkeypatch.setenv("MC_GLUE_HOOK", "one")
    monkeypatch.delenv("MC_GLUE_UNSET", raising=False)
    environ = RecordingEnviron(os.environ)
    assert environ.get("MC_GLUE_HOOK") == "one" and environ.get("MC_GLUE_UNSET") is None
    fingerprint = Fingerprint.of({}, environ, None)
    assert fingerprint.current({}, None)
    # os.environ swapped for a plain dict (an embedding host, a test): no stored form to read
    monkeypatch.setattr(os, "environ", {**os.environ})
    assert fingerprint.current({}, None)
    os.environ["MC_GLUE_HOOK"] = "two"
    assert not fingerprint.current({}, None)
    os.environ["MC_GLUE_HOOK"] = "one"
    os.environ["MC_GLUE_UNSET"] = "now set"
    assert not fingerprint.current({}, None)


def test_arguments_changed_in_the_same_dict_rebuild_the_config():
    engine = make_engine()
    args = dict(BASE)  # the engine may hand the very same dict to every call
    call(engine, args)
    args["state_change_count"] = "3"
    call(engine, args)
    assert loads(engine) == 2
    call(engine, args)
    assert loads(engine) == 2
    del args["state_change_count"]
    call(engine, args)
    assert loads(engine) == 3


def test_a_config_file_named_later_is_read(tmp_path, monkeypatch):
    # built without a file, the fingerprint skips the file's identity: naming one must still count
    (tmp_path / "mad.toml").write_text('mad_thresholds = "temp:3:9:5"\n')
    monkeypatch.setenv("PLUGIN_DIR", str(tmp_path))
    engine = make_engine()
    call(engine, BASE)
    without = {k: v for k, v in BASE.items() if k != "mad_thresholds"}
    call(engine, {**without, "config_file_path": "mad.toml"})
    assert loads(engine) == 2
    assert engine.cache.get(STATE_KEY).config.thresholds[0].count == 5


# -- the table and schema checks -------------------------------------------------------------


def test_each_new_config_says_again_that_its_table_is_missing():
    engine = make_engine({"other": {"tags": [], "fields": []}})
    call(engine, BASE)
    call(engine, BASE)
    missing = [line for line in engine.log_texts("WARN") if "does not exist yet" in line]
    assert len(missing) == 1  # once per config, not once per call
    call(engine, {**BASE, "state_change_count": "3"})
    missing = [line for line in engine.log_texts("WARN") if "does not exist yet" in line]
    assert len(missing) == 2


def test_a_one_row_flush_with_a_new_tag_refreshes_the_schema():
    engine = make_engine()
    call(engine, BASE)
    call(engine, BASE)
    asked = [q for q in engine.query_handler.calls if "information_schema" in q]
    assert len(asked) == 1
    engine.query_handler.tables["cpu"]["tags"].append("dc")
    call(engine, BASE, dc="x")  # one row, one column the cached schema lacks
    asked = [q for q in engine.query_handler.calls if "information_schema" in q]
    assert len(asked) == 2


# -- the call's log: id and masks made at the first line ---------------------------------------


def test_every_line_of_a_call_carries_one_id_and_the_next_call_another():
    engine = make_engine({"other": {"tags": [], "fields": []}})
    call(engine, BASE)  # "configuration loaded" and "does not exist yet": two lines, one call
    first = engine.take_logs()
    call(engine, {**BASE, "state_change_count": "3"})
    second = engine.take_logs()
    assert len(first) >= 2 and len(second) >= 2
    ids_first = {CALL_ID.match(record.log_text).group(1) for record in first}  # type: ignore[union-attr]
    ids_second = {CALL_ID.match(record.log_text).group(1) for record in second}  # type: ignore[union-attr]
    assert len(ids_first) == 1 and len(ids_second) == 1
    assert ids_first != ids_second


def test_secrets_hidden_after_a_line_are_masked_in_the_lines_after_it():
    engine = EngineAPI(database="db")
    log = CallLog(engine, "mad_check")
    log.info("before any secret: shared-secret-1234-long")
    log.hide(["", "shared-secret-1234", "shared-secret-1234-long"])
    log.info("now: shared-secret-1234-long and shared-secret-1234")
    log.hide(iter(["second-secret-abcdef"]))  # a generator is read at once
    log.warn("and second-secret-abcdef")
    texts = [record.log_text for record in engine.take_logs()]
    assert texts[0].endswith("before any secret: shared-secret-1234-long")
    # the longest first, so the longer secret is not shown in part
    assert texts[1].endswith("now: ****long and ****1234")
    assert texts[2].endswith("and ****cdef")
    assert len({CALL_ID.match(text).group(1) for text in texts}) == 1  # type: ignore[union-attr]


# -- the detector's one-row shortcut ----------------------------------------------------------


@pytest.mark.parametrize(
    "row",
    [
        {"host": "a", "temp": 1.0},
        {"host": "a", "temp": 1.0, "time": "now"},
        {"host": "a", "temp": 1.0, "time": 1.5},
        {"host": "a", "temp": 1.0, "time": True},
        ["not", "a", "row"],
    ],
)
def test_a_lone_row_without_a_usable_time_is_passed_over_as_in_any_batch(row):
    alone = Detector("cpu", [Threshold("temp", 3, 3, count=1)]).process([row], ["host"])
    good = {"host": "a", "temp": 1.0, "time": 10**18}
    among = Detector("cpu", [Threshold("temp", 3, 3, count=1)]).process([row, good], ["host"])
    reason = SKIP_BAD_ROW if isinstance(row, list) else SKIP_BAD_TIME
    assert alone.points == 0 and +alone.skipped == {reason: 1}
    assert among.points == 1 and +among.skipped == {reason: 1}


def test_a_lone_engine_row_is_judged_as_in_a_batch():
    values = [10.0, 11.0, 12.0, 10.0, 11.0, 12.0, 100.0, 100.0, 11.0, 100.0, 100.0]
    one_by_one = Detector("cpu", [Threshold("temp", 2, 5, count=2)])
    fired = []
    for i, value in enumerate(values):
        result = one_by_one.process([{"host": "a", "temp": value, "time": i * 10**9}], ["host"])
        assert result.points == 1
        fired += result.alerts
    whole = Detector("cpu", [Threshold("temp", 2, 5, count=2)]).process(
        [{"host": "a", "temp": value, "time": i * 10**9} for i, value in enumerate(values)],
        ["host"],
    )
    assert [(a.time_ns, a.value, a.median, a.mad) for a in fired] == [
        (a.time_ns, a.value, a.median, a.mad) for a in whole.alerts
    ]
    assert fired  # two outliers in a row fire the count rule
