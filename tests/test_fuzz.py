"""Bad input never crashes a trigger: property-based fuzzing of everything a user or writer sends.

"Crash" means an exception escaping to the engine, or the plugin's catch-all line ("call failed"),
which costs the whole batch. Clear configuration errors and logged, skipped rows are fine.
"""

from __future__ import annotations

import math
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from madcheck.config import settings as settings_module
from madcheck.config.settings import ConfigError, load_config
from madcheck.config.thresholds import MAX_WINDOW, MIN_WINDOW, parse_thresholds
from madcheck.detect.detector import Detector
from madcheck.engine.cache import TriggerCache
from tests.secrets import paused
from tests.stored_history import make_engine_with_history
from tests.support import free_port, make_engine, run_and_settle

FAST = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
SLOW = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

KNOWN_ARGUMENTS = sorted(settings_module.KNOWN_ARGUMENTS)  # every argument the trigger reads

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.binary(max_size=10),
)
anything = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
# text shaped like the arguments' own alphabet, so the parsers get past their first check
argument_text = st.text(alphabet="tempload0123456789.:@'\" -smhdwunx,=_/", max_size=40)
argument_values = st.one_of(argument_text, anything)


def crashed(engine) -> list[str]:
    return [line for line in engine.log_texts("ERROR") if "call failed" in line]


# -- the thresholds parser ---------------------------------------------------------------------


@FAST
@given(st.one_of(argument_text, st.text(), anything))
def test_the_thresholds_parser_never_raises_and_returns_only_valid_conditions(value):
    thresholds, problems = parse_thresholds(value)
    assert all(isinstance(p, str) and p for p in problems)
    for threshold in thresholds:
        assert threshold.field
        assert math.isfinite(threshold.k) and threshold.k > 0
        assert MIN_WINDOW <= threshold.window_count <= MAX_WINDOW
        assert (threshold.count is None) != (threshold.duration_ns is None)
        assert (threshold.count or threshold.duration_ns or 0) > 0
        threshold.describe()  # printable in log lines


# -- whole argument sets -----------------------------------------------------------------------


argument_sets = st.dictionaries(
    st.one_of(st.sampled_from(KNOWN_ARGUMENTS), st.text(max_size=12)),
    argument_values,
    max_size=12,
)


@FAST
@given(argument_sets)
def test_any_argument_set_gives_a_config_or_one_clear_error(arguments):
    try:
        loaded = load_config(arguments, environ={})
    except ConfigError as error:
        assert str(error)
        return
    config = loaded.config
    assert config.measurement and config.thresholds and config.senders_config
    assert config.delivery.timeout_s > 0 and config.delivery.outbox_size >= 1


VALID = {"measurement": "cpu", "mad_thresholds": "temp:3:5:2", "senders": "http"}
VALID_HOOK = {"http_webhook_url": "https://hooks.test/fuzz"}


@SLOW
@given(st.one_of(argument_sets, argument_sets.map(lambda extra: {**VALID, **extra, **VALID_HOOK})))
def test_any_argument_set_never_crashes_the_plugin(arguments):
    engine = make_engine()
    batch = [
        {
            "table_name": "cpu",
            "rows": [{"host": "a", "temp": float(i), "time": i} for i in range(6)],
        }
    ]
    with paused():
        run_and_settle(engine, batch, {str(k): v for k, v in arguments.items()})
    assert crashed(engine) == []


# -- TOML files --------------------------------------------------------------------------------

toml_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        escaped = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped)
        return f'"{escaped}"'
    return "[" + ", ".join(toml_value(v) for v in value) + "]"


toml_documents = st.dictionaries(
    st.sampled_from(KNOWN_ARGUMENTS),
    st.one_of(
        toml_scalars,
        st.lists(st.one_of(toml_scalars, st.lists(toml_scalars, max_size=5)), max_size=4),
    ),
    max_size=8,
).map(lambda d: "".join(f"{k} = {toml_value(v)}\n" for k, v in d.items()))


@FAST
@given(st.one_of(toml_documents, st.text(max_size=200), argument_text))
def test_any_toml_file_gives_a_config_or_one_clear_error(tmp_path_factory, content):
    folder = tmp_path_factory.mktemp("plugins")
    Path(folder, "mad.toml").write_text(content, encoding="utf-8")
    base = {"measurement": "cpu", "mad_thresholds": "temp:3:9:2", "senders": "slack"}
    try:
        load_config({**base, "config_file_path": "mad.toml"}, environ={"PLUGIN_DIR": str(folder)})
    except ConfigError as error:
        assert str(error)


@FAST
@given(st.binary(max_size=100))
def test_a_toml_file_of_random_bytes_is_a_clear_error(tmp_path_factory, content):
    folder = tmp_path_factory.mktemp("plugins")
    Path(folder, "mad.toml").write_bytes(content)
    base = {"measurement": "cpu", "mad_thresholds": "temp:3:9:2", "senders": "slack"}
    try:
        load_config({**base, "config_file_path": "mad.toml"}, environ={"PLUGIN_DIR": str(folder)})
    except ConfigError as error:
        assert str(error)


# -- rows --------------------------------------------------------------------------------------

times = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=1_700_000_000 * 10**9, max_value=1_700_000_100 * 10**9),
    st.floats(),
    st.text(max_size=10),
    st.none(),
)
cell_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.booleans(),
    st.text(max_size=10),
    st.none(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
row_strategy = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "host": st.one_of(st.text(max_size=8), cell_values),
            "region": st.text(max_size=8),
            "temp": cell_values,
            "load": cell_values,
            "time": times,
            "extra": cell_values,
        },
    ),
    st.dictionaries(st.text(max_size=6), cell_values, max_size=4),
    cell_values,
)
# mostly well-formed rows of a few series, so windows fill and rules fire among the bad ones
good_rows = st.builds(
    lambda host, value, second: {"host": host, "temp": value, "time": second * 10**9},
    st.sampled_from(["a", "b", "ü-tag"]),
    st.one_of(st.floats(min_value=0, max_value=20), st.just(1e6)),
    st.integers(min_value=1_700_000_000, max_value=1_700_000_300),
)
batches = st.lists(st.one_of(good_rows, good_rows, row_strategy), max_size=60)


engine_rows = st.lists(
    st.one_of(
        good_rows,
        st.fixed_dictionaries(
            {},
            optional={
                "host": st.text(max_size=8),
                "region": st.text(max_size=8),
                "temp": cell_values,
                "load": cell_values,
                "time": times,
            },
        ),
        cell_values,
    ),
    max_size=60,
)


@FAST
@given(engine_rows)
def test_the_detector_takes_any_values_and_times(rows):
    """The detector's contract: tag values are text, as the engine gives them; anything else
    may be wrong, and the plugin passes over rows whose tags are not text."""
    detector = Detector("cpu", parse_thresholds("temp:3:5:2@load:2:5:10s")[0], 3)
    result = detector.process(rows, ["host", "region"])
    assert result.points + sum(result.skipped.values()) >= 0


@SLOW
@given(st.lists(batches, min_size=1, max_size=3), batches)
def test_any_rows_never_crash_the_plugin_and_problems_are_one_line_per_call(calls, stored):
    engine = make_engine_with_history()
    engine.query_handler.stored["cpu"] = [
        r for r in stored if isinstance(r, dict) and type(r.get("time")) is int
    ]
    args = {
        "measurement": "cpu",
        "mad_thresholds": "temp:3:5:2@temp:2:5:20s",
        "senders": "slack",
        "slack_webhook_url": "https://hooks.slack.test/services/T/B/FUZZ",
        "port_override": str(free_port()),
        "notification_attempts": "1",
        "state_change_count": "4",
    }
    for rows in calls:
        before = len(engine.logs)
        with paused():
            run_and_settle(engine, [{"table_name": "cpu", "rows": rows}], args)
        lines = [r.log_text for r in engine.logs[before:]]
        assert sum("passed over" in line for line in lines) <= 1
        assert sum("alert delivery failed" in line for line in lines) <= 1
    assert crashed(engine) == []


# -- line protocol into the local engine --------------------------------------------------------

LP_ALPHABET = "cpu,host=a temp= 1.5i u \"'\\\n#=,tT fF 0123456789-e.x ü\t\r"
valid_line = st.builds(
    lambda m, tag, value, kind, t: f"{m},host={tag} temp={value}{kind} {t}",
    st.sampled_from(["cpu", "mem", "c\\ pu", "ü"]),
    st.text(alphabet="abc\\ =,ü", min_size=1, max_size=5),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(["", "i", "u", ".5", "e400"]),
    st.integers(min_value=-(2**70), max_value=2**70),
)
lp_bodies = st.one_of(
    st.text(alphabet=LP_ALPHABET, max_size=120),
    st.text(max_size=80),
    st.lists(valid_line, max_size=5).map("\n".join),
    st.lists(st.one_of(valid_line, st.text(alphabet=LP_ALPHABET, max_size=30)), max_size=5).map(
        "\n".join
    ),
)


@FAST
@given(lp_bodies, st.sampled_from(["auto", "ns", "us", "ms", "s"]))
def test_any_line_protocol_parses_to_points_or_line_errors(body, precision):
    from madcheck.engine.lineprotocol import LineError, Point, parse_lines

    for item in parse_lines(body, precision, default_time_ns=1_700_000_000 * 10**9):
        assert isinstance(item, Point | LineError)
        if isinstance(item, LineError):
            assert item.error_message and item.line_number >= 1
        else:
            assert -(2**63) <= item.time_ns <= 2**63 - 1


@SLOW
@given(st.lists(lp_bodies, min_size=1, max_size=3))
def test_any_line_protocol_through_storage_never_crashes_the_plugin(tmp_path_factory, bodies):
    from madcheck.engine.processing import group_table_batches
    from madcheck.engine.storage import Storage

    storage = Storage(tmp_path_factory.mktemp("data"))
    engine = make_engine(cache=TriggerCache())
    engine.query_handler = lambda sql, params, db: storage.query(db, sql, params)
    args = {
        "measurement": "cpu",
        "mad_thresholds": "temp:3:3:1",
        "senders": "http",
        "http_webhook_url": "https://hooks.test/lp",
        "port_override": str(free_port()),
        "notification_attempts": "1",
    }
    try:
        for body in bodies:
            result = storage.write_lp("db", body, "auto", default_time_ns=1_700_000_000 * 10**9)
            for error in result.errors:
                assert error.error_message
            with paused():
                run_and_settle(engine, group_table_batches(result.rows), args)
    finally:
        storage.close()
    assert crashed(engine) == []


def test_rows_with_tags_that_are_not_text_are_counted_and_the_rest_still_alerts():
    from tests.support import receiver, rows

    batch = rows("cpu", [10, 12, 11, 13, 9, 11, 12, 10, 11, 100, 100], host="a")
    batch["rows"] += [{"host": ["x"], "temp": 1.0, "time": 1}, {"host": 7, "temp": 1.0, "time": 2}]
    with receiver() as notifier:
        engine = make_engine()
        args = {
            "measurement": "cpu",
            "mad_thresholds": "temp:3:9:2",
            "senders": "http",
            "http_webhook_url": "https://hooks.test/tags",
            "port_override": str(notifier.port),
        }
        run_and_settle(engine, [batch], args)
        assert len(notifier.requests) == 1
    (warning,) = [w for w in engine.log_texts("WARN") if "passed over" in w]
    assert "tag value not text (2)" in warning
    assert crashed(engine) == []
