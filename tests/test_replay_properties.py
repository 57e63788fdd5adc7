"""Properties of ``madcheck replay`` over generated input: batching does not change results, and
any text in the data or on the command line is shown as text everywhere."""

from __future__ import annotations

import csv
import itertools
import json
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from madcheck.cli import main
from madcheck.engine.api import LogRecord
from madcheck.engine.catalog import SchemaQueries
from madcheck.replay.alerts import clean
from madcheck.replay.app import default_plugin
from madcheck.replay.arguments import trigger_arguments
from madcheck.replay.console import shown
from madcheck.replay.trigger import ReplayTrigger
from tests import replay_data as data

# -- batching -------------------------------------------------------------------------------


def _ignore_log(record: LogRecord) -> None:
    """The plugin's log is not what is compared."""


def _history(rows: list[dict[str, Any]], cuts: list[int], extra: dict[str, str]) -> list[dict]:
    """The alert history one trigger records when ``rows`` arrive split at ``cuts``."""
    catalog = SchemaQueries()
    catalog.add_columns("cpu", ["host"], ["temp"])
    arguments = trigger_arguments(
        {"measurement": "cpu", "mad_thresholds": "temp:2.5:8:2@temp:3:8:20s", **extra},
        capture_port=9,  # nothing listens: the history is written before any delivery
    )
    arguments["notification_attempts"] = "1"
    plugin = default_plugin()
    assert plugin is not None
    trigger = ReplayTrigger(plugin, arguments, "cpu", catalog, _ignore_log)
    recorded = []
    edges = [0, *sorted(set(cuts)), len(rows)]
    for start, end in itertools.pairwise(edges):
        if end > start:
            recorded += [record.as_row() for record in trigger.call(rows[start:end])]
    return recorded


series_values = st.lists(
    st.one_of(st.floats(9.0, 11.0), st.sampled_from([30.0, -10.0])), min_size=10, max_size=60
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(series_values, min_size=1, max_size=3),
    cuts=st.lists(st.integers(0, 180), max_size=8),
    lifecycle=st.sampled_from(
        [{}, {"state_change_count": "3"}, {"notify_recovery": "true", "recovery_count": "2"}]
    ),
)
def test_any_batching_gives_the_same_alerts_and_history_rows(values, cuts, lifecycle):
    """Rows in time order, interleaved across series as collectors write them, cut into plugin
    calls anywhere: the history is that of a single call with every row."""
    rows = [
        {"host": f"h{host}", "temp": value, "time": (data.START_S + 10 * index) * 10**9}
        for index in range(max(map(len, values)))
        for host, series in enumerate(values)
        if index < len(series)
        for value in [series[index]]
    ]
    whole = _history(rows, [], lifecycle)
    assert _history(rows, cuts, lifecycle) == whole
    one_by_one = _history(rows, list(range(len(rows))), lifecycle)
    assert one_by_one == whole


# -- any input is shown as text -------------------------------------------------------------

TRICKY = [
    "[/x]", "[id]", "[bold red]", ":fire:", ":abc:", "<b>", "</td>", "&amp;", "<script>",
    "\x1b[31m", "\x07", "\u202e", "é", "🔥", "$x$", "=", ",", " ", '"', "'", "a",
]  # fmt: skip
# A backslash is left out: before a comma, the history row written with LineBuilder reads back
# as an escaped comma (line protocol's own ambiguity), which is a LineBuilder matter.
tricky_text = st.lists(st.sampled_from(TRICKY), min_size=1, max_size=4).map("".join)
# A field name must also be writable in mad_thresholds: no ":" or "@", no surrounding spaces
# or quotes (the trigger argument strips them).
field_text = tricky_text.map(
    lambda t: "f" + re.sub("[ :@]", "_", t).replace("'", "").replace('"', "") + "f"
)


def _lp_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _csv_tags(text: str) -> dict[str, str]:
    """``escaped_tags`` read back: backslash escapes, then ``,`` and ``=`` as separators."""
    pairs, current, name = {}, "", None
    chars = iter(text)
    for char in chars:
        if char == "\\":
            current += next(chars)
        elif char == "=" and name is None:
            name, current = current, ""
        elif char == ",":
            pairs[name] = current
            name, current = None, ""
        else:
            current += char
    pairs[name] = current
    return pairs


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.add(tag)

    def handle_data(self, text: str) -> None:
        self.text.append(text)


PAGE_ELEMENTS = {
    "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "dl", "dt", "dd",
    "ol", "li", "a", "figure", "img", "table", "thead", "tbody", "tr", "th", "td", "details",
    "summary",
}  # fmt: skip


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tag_key=tricky_text, tag_value=tricky_text, field=field_text)
@example(tag_key="host", tag_value="[/x]", field=":fire:")
@example(tag_key="host", tag_value="\N{FIRE} web", field="temp")
# a glyph the chart font lacks is drawn as a box, without a warning in the user's terminal
@pytest.mark.filterwarnings("error::UserWarning")
def test_any_tag_and_field_text_is_shown_as_text(
    tmp_path_factory, capsys, tag_key, tag_value, field
):
    # names the engine or the history reserves, and a column cannot be tag and field at once
    assume(tag_key not in ("time", "field", "rule", "state", "alert_id") and field != "time")
    assume(tag_key != field)
    folder = tmp_path_factory.mktemp("any")
    head = f"cpu,{_lp_escape(tag_key)}={_lp_escape(tag_value)} {_lp_escape(field)}="
    lines = [f"{head}{data.value('a', i)} {data.time_s(i)}" for i in range(80)]
    lp = data.write_lp(folder / "any.lp", lines)
    jsonl, csv_file, report = folder / "a.jsonl", folder / "a.csv", folder / "r.html"
    spec = f"{field}:3:20:3"
    first = ["replay", str(lp), "--mad-thresholds", spec, "--no-progress"]
    assert main([*first, "--alerts", str(jsonl), "--report", str(report)]) == 0
    assert main([*first, "--alerts", str(csv_file)]) == 0
    captured = capsys.readouterr()
    # terminal: the text itself (control characters as escapes), nothing interpreted
    assert f"{shown(tag_key)}={shown(tag_value)}" in captured.out
    assert shown(field) in captured.out
    for stream in (captured.out, captured.err):
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", stream)
    # files: the exact text, read back
    alerts = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [a["tags"] for a in alerts] == [{tag_key: tag_value}]
    assert {a["field"] for a in alerts} == {field}
    rows = list(csv.DictReader(csv_file.open(encoding="utf-8", newline="")))
    assert [_csv_tags(r["tags"]) for r in rows] == [{tag_key: tag_value}]
    assert {r["field"] for r in rows} == {field}
    # HTML: only the page's own elements, and the data among its text
    page = _Elements()
    page.feed(report.read_text(encoding="utf-8"))
    page.close()
    assert page.tags <= PAGE_ELEMENTS
    assert f"{shown(tag_key)}={shown(tag_value)}" in "".join(page.text)


def test_the_users_own_arguments_are_echoed_as_written(tmp_path, capsys):
    lp = data.write_lp(tmp_path / "cpu.lp")
    assert main(["replay", str(lp), "--mad-thresholds", "temp:abc:30:3"]) == 2
    err = capsys.readouterr().err
    assert "temp:abc:30:3" in err and "🔤" not in err


@pytest.mark.parametrize(
    ("computed", "written"),
    [
        (0.1 + 0.2, "0.3"),
        (10.1 + 3 * 0.1, "10.4"),
        (0.346 + 1e-16, "0.346"),
        (1 / 3, "0.333333333333"),
        (10.2 - 10.0, "0.2"),
        (0.123456789012345, "0.123456789012345"),
        (93.0, "93.0"),
        (1e-300, "1e-300"),
        (123456789.123, "123456789.123"),
    ],
)
def test_numbers_are_written_without_arithmetic_noise(computed, written):
    assert repr(clean(computed)) == written
    assert json.dumps(clean(computed)) == written


def test_alert_files_name_states_as_the_alerts_table_does(tmp_path):
    lp = data.write_lp(tmp_path / "cpu.lp")
    out = tmp_path / "alerts.csv"
    main(["replay", str(lp), "--mad-thresholds", data.THRESHOLDS, "--alerts", str(out),
          "--notify-recovery", "true"])  # fmt: skip
    rows = list(csv.DictReader(out.open()))
    assert {r["state"] for r in rows} == {"firing", "resolved"}
    assert "0.3000000" not in out.read_text() and "0000000001" not in out.read_text()


def test_counts_read_in_good_grammar(tmp_path, capsys):
    lines = [f"cpu,host=a temp={data.value('b', i)} {data.time_s(i)}" for i in range(160)]
    lp = data.write_lp(tmp_path / "one.lp", lines)
    main(["replay", str(lp), "--mad-thresholds", data.THRESHOLDS])
    out = capsys.readouterr().out
    assert "of 1 series replayed; 1 alert fired" in out
    assert "1 notification (none sent)" in out
