"""Replay outputs beyond the alert file: charts, the HTML report, sweeps; and streaming."""

from __future__ import annotations

import base64
import io
import itertools
import json
import random
import re
import struct
import sys
from array import array
from html.parser import HTMLParser
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from madcheck.cli import main
from madcheck.config.settings import load_config
from madcheck.engine.api import LogRecord
from madcheck.engine.lineprotocol import Point
from madcheck.replay.app import default_plugin
from madcheck.replay.arguments import ArgumentError, parse_trigger_options, trigger_arguments
from madcheck.replay.console import ReplayConsole
from madcheck.replay.inputs import InputOptions
from madcheck.replay.runner import PassSettings, replay_pass
from madcheck.replay.stream import Admission, batches
from madcheck.replay.sweep import SweepError, parse_sweep
from tests import replay_data as data

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")


def replay(*args: object) -> int:
    return main(["replay", *(str(a) for a in args)])


def assert_png(raw: bytes) -> tuple[int, int]:
    """A real PNG: signature, IHDR first, and readable by PIL. Returns its size."""
    assert raw.startswith(PNG_SIGNATURE)
    assert raw[12:16] == b"IHDR"
    width, height = struct.unpack(">II", raw[16:24])
    from io import BytesIO

    from PIL import Image

    with Image.open(BytesIO(raw)) as image:
        image.load()
        assert image.size == (width, height)
    assert width >= 600 and height >= 300
    return width, height


def test_plot_writes_one_png_per_alerting_series(tmp_path, capsys):
    lp = data.write_lp(tmp_path / "cpu.lp")
    plots = tmp_path / "plots"
    assert replay(lp, "--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS,
                  "--plot", plots) == 0  # fmt: skip
    files = sorted(plots.iterdir())
    # host=c never alerted: no chart for it
    assert [f.name.split("_")[2] for f in files] == ["host=a", "host=b"]
    for file in files:
        assert_png(file.read_bytes())
    assert "2 charts written" in capsys.readouterr().err


def test_plot_limit_keeps_the_series_with_most_alerts(tmp_path, capsys):
    lp = data.write_lp(tmp_path / "cpu.lp")
    plots = tmp_path / "plots"
    replay(lp, "--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS,
           "--plot", plots, "--plot-limit", "1")  # fmt: skip
    assert [f.name.split("_")[2] for f in plots.iterdir()] == ["host=a"]
    assert "charts drawn for 1 of 2 alerting series" in capsys.readouterr().err


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[str] = []
        self.tables = 0
        self.rows: list[list[str]] = []
        self.open_tags: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag not in ("meta", "img", "br", "link"):  # void elements have no end tag
            self.open_tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        elif tag == "table":
            self.tables += 1
        elif tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self._cell = []

    def handle_endtag(self, tag):
        assert self.open_tags and self.open_tags[-1] == tag, f"</{tag}> closes nothing"
        self.open_tags.pop()
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, text):
        if self._cell is not None:
            self._cell.append(text)


def test_report_is_one_html_page_embedding_the_charts(tmp_path, capsys):
    lp = data.write_lp(tmp_path / "cpu.lp")
    report = tmp_path / "report.html"
    secret = "https://hooks.slack.com/services/T000/B000/S3CRETS3CRET"
    assert replay(lp, "--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS,
                  "--report", report, "--senders", "slack",
                  "--slack-webhook-url", secret) == 0  # fmt: skip
    text = report.read_text()
    assert "<dt>mad_thresholds</dt><dd>temp:3:20:3</dd>" in text  # the configuration replayed
    assert "senders" not in text and "localhost" not in text  # no stand-in details
    assert "S3CRET" not in text and "S3CRET" not in "".join(capsys.readouterr())
    page = _Page()
    page.feed(text)
    page.close()
    assert page.open_tags == []  # every element closed
    assert text.startswith("<!DOCTYPE html>")
    assert page.tables == 3  # the alerts of each alerting series, then every series
    assert len(page.images) == 2
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert_png(base64.b64decode(src.split(",", 1)[1]))
    # nothing to fetch: no external images, scripts or stylesheets
    assert not re.search(r'(src|href)="(?!data:|#)', text)
    alert_rows = [row for row in page.rows if len(row) == 9 and row[1] in ("firing", "resolved")]
    assert [(row[0], row[1]) for row in alert_rows] == [
        (data.rfc3339(index), "firing") for _, index in data.EXPECTED
    ]
    # the page opens with the summary, then the index linking to each series' section
    assert text.index('class="summary"') < text.index('class="index"') < text.index("<figure>")
    for anchor in re.findall(r'<a href="#([^"]+)"', text):
        assert f'id="{anchor}"' in text


def test_plot_without_matplotlib_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    lp = data.write_lp(tmp_path / "cpu.lp")
    code = replay(lp, "--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS,
                  "--plot", tmp_path / "plots")  # fmt: skip
    captured = capsys.readouterr()
    assert code == 2
    assert "pip install -e '.[replay]' in the madcheck checkout" in captured.err
    assert captured.out == ""  # refused before replaying, not after
    assert not (tmp_path / "plots").exists()


def _noisy_file(path: Path) -> Path:
    rng = random.Random(7)
    lines = [
        f"cpu,host={host} temp={rng.gauss(20, 1) + (15 if rng.random() < 0.02 else 0):.3f} "
        f"{data.time_s(i)}"
        for i in range(400)
        for host in ("a", "b")
    ]
    return data.write_lp(path, lines)


def _sweep_rows(out: str) -> dict[tuple[str, str], tuple[int, int, int]]:
    """(k, window_count) -> alerts fired, suppressed, incidents."""
    rows = {}
    for line in out.splitlines():
        cells = [cell.strip() for cell in line.strip("│┃ ").split("│")]
        if len(cells) >= 7 and cells[0][:1].isdigit():
            rows[(cells[0], cells[1])] = (int(cells[2]), int(cells[3]), int(cells[4]))
    return rows


def _incidents_in_summary(out: str) -> int:
    match = re.search(r"; ([\d,]+) incidents? in ", out)
    assert match, out
    return int(match.group(1).replace(",", ""))


def test_sweep_counts_agree_with_individual_runs(tmp_path, capsys):
    lp = _noisy_file(tmp_path / "noisy.lp")
    common = (
        "--measurement",
        "cpu",
        "--mad-thresholds",
        "temp:3:20:2",
        "--state-change-count",
        "4",
    )
    replay(lp, *common, "--sweep", "k=2,3", "window_count=10,30")
    swept = _sweep_rows(capsys.readouterr().out)
    assert sorted(swept) == [("2", "10"), ("2", "30"), ("3", "10"), ("3", "30")]
    for (k, window), counts in swept.items():
        out = tmp_path / f"alerts-{k}-{window}.jsonl"
        replay(lp, "--measurement", "cpu", "--mad-thresholds", f"temp:{k}:{window}:2",
               "--state-change-count", "4", "--alerts", out)  # fmt: skip
        incidents = _incidents_in_summary(capsys.readouterr().out)
        alerts = [json.loads(line) for line in out.read_text().splitlines()]
        fired = sum(1 for a in alerts if not a["suppressed"])
        assert counts == (fired, len(alerts) - fired, incidents), (k, window)
        # the internal recovery tracking shows nowhere: notify_recovery is off
        assert all(a["state"] != "resolved" for a in alerts)
    # the combinations really differ, or the comparison above proves little; a count rule
    # re-fires within an incident, so incidents are fewer than alerts somewhere
    assert len({counts for counts in swept.values()}) > 1
    assert any(incidents < fired for fired, _, incidents in swept.values())


def test_sweep_rejects_unknown_parameters():
    with pytest.raises(SweepError, match="NAME=V1,V2"):
        parse_sweep(["kk=2,3"])
    assert parse_sweep(["k=2,3", "threshold=2,5m"]) == [
        {"k": "2", "threshold": "2"},
        {"k": "2", "threshold": "5m"},
        {"k": "3", "threshold": "2"},
        {"k": "3", "threshold": "5m"},
    ]


def test_trigger_options_become_trigger_arguments():
    assert parse_trigger_options(
        ["--state-change-count", "3", "--notification-count-text=a b"]
    ) == {
        "state_change_count": "3",
        "notification_count_text": "a b",
    }
    with pytest.raises(ArgumentError, match="needs a value"):
        parse_trigger_options(["--state-change-count"])


def _points(times_s, admission):
    points = (
        Point("cpu", {"host": "a"}, {"temp": 1.0}, int(t * 1e9), number)
        for number, t in enumerate(times_s, start=1)
    )
    return admission.rows("test", ([point] for point in points))


def test_batches_follow_the_data_clock():
    admission = Admission("cpu", lambda *_: None)
    got = [
        [row["time"] // 10**8 for row in batch.rows]
        for batch in batches(_points([0, 0.5, 1.0, 1.2, 0.9, 3.5], admission), 10**9, 1000)
    ]
    # a batch closes 1 s of data time after its first row; a late row joins the open batch
    assert got == [[0, 5], [10, 12, 9], [35]]


def test_batches_are_bounded_and_lazy():
    admission = Admission("cpu", lambda *_: None)
    endless = _points((i / 1000 for i in itertools.count()), admission)
    first = next(batches(endless, None, max_rows=100))
    assert len(first.rows) == 100
    assert first.new_tags == ["host"] and first.new_fields == ["temp"]


class _RecordingConsole(ReplayConsole):
    def __init__(self) -> None:
        super().__init__(progress=False, stream=io.StringIO())
        self.records: list[LogRecord] = []

    def plugin_log(self, record: LogRecord) -> None:
        self.records.append(record)


def test_summary_outliers_match_what_the_plugin_itself_counted(tmp_path):
    """The per-series counts come from the plugin's detector; they must agree with the
    plugin's own per-batch outlier counts (its log), also when a tag column appears half-way
    through (the plugin then starts new series)."""
    lp = _noisy_file(tmp_path / "noisy.lp")
    lines = lp.read_text().splitlines()
    half = len(lines) // 2
    lines[half:] = [line.replace(",host=", ",region=eu,host=", 1) for line in lines[half:]]
    lp.write_text("\n".join(lines) + "\n")
    arguments = trigger_arguments(
        {"measurement": "cpu", "mad_thresholds": "temp:2:10:2@temp:3:20:3"}, capture_port=9
    )
    settings = PassSettings(
        files=(lp,),
        inputs=InputOptions("cpu"),
        config=load_config(arguments).config,
        plugin=default_plugin() or Path("missing"),
    )
    console = _RecordingConsole()
    result = replay_pass(settings, console, [arguments])
    logged = sum(
        int(n)
        for record in console.records
        for n in re.findall(r"temp: (\d+)", record.log_text)
        if "outlier verdicts" in record.log_text
    )
    assert logged > 0
    assert sum(s.outliers for s in result.stats.values()) == logged
    # the region tag split every host into an old and a new series
    assert {s.tags_text for s in result.stats.values()} >= {"host=a", "host=a,region=eu"}


def test_a_charting_pass_parses_only_the_charted_series_lines():
    """``SeriesLines`` keeps the charted series' lines, the first line of any other head, and
    every line after one that may open a string running over the next lines."""
    from madcheck.replay.inputs import SeriesLines

    lines = [
        "cpu,host=a temp=1 1\n",
        "cpu,host=b temp=1 1\n",
        "mem,host=a used=1 1\n",
        "cpu,host=a temp=2 2\n",
        "cpu,host=b temp=2 2\n",
        "cpu,host=a\\ x temp=2 2\n",
        "cpu,host=a\\ x temp=3 3\n",
        "mem,host=a used=2 2\n",
        'cpu,host=b s="runs\n',
        'on" 3\n',
        "cpu,host=b temp=3 4\n",
    ]
    kept = list(SeriesLines("cpu", {(("host", "a"),)}).lines(lines))
    assert kept == [lines[i] for i in (0, 1, 2, 3, 5, 6, 8, 9, 10)]


def test_charted_series_values_match_a_pass_over_every_line(tmp_path):
    """The values and bands drawn come out the same whether the charting pass reads every
    line or only the charted series' lines (``SeriesLines``)."""
    from madcheck.detect.alerts import alert_id_for
    from madcheck.detect.detector import Detector
    from madcheck.engine.catalog import SchemaQueries
    from madcheck.replay.charts import ChartObserver, SeriesTrace
    from madcheck.replay.inputs import SeriesLines
    from madcheck.replay.runner import BatchSource

    rng = random.Random(5)
    path = tmp_path / "mixed.lp"
    with path.open("w") as handle:
        for step in range(3000):
            host = rng.choice("abcd")
            value = rng.gauss(10, 1) + (30 if rng.random() < 0.01 else 0)
            handle.write(f"cpu,host={host} temp={value:.3f} {1_700_000_000 + step}\n")
            if step % 700 == 0:
                handle.write(f"mem,host={host} used=1 {1_700_000_000 + step}\n")
    arguments = trigger_arguments(
        {"measurement": "cpu", "mad_thresholds": "temp:3:20:2"}, capture_port=9
    )
    config = load_config(arguments).config
    settings = PassSettings(
        files=(path,), inputs=InputOptions("cpu"), config=config, plugin=Path("unused"),
        max_batch_rows=500,
    )  # fmt: skip
    console = ReplayConsole(progress=False, stream=io.StringIO())
    charted = {(("host", "b"),), (("host", "d"),)}
    (threshold,) = config.thresholds

    def traced(only: SeriesLines | None) -> dict[str, tuple[list[int], list[float], list[float]]]:
        traces = {
            alert_id_for("cpu", "temp", tags, threshold): SeriesTrace(3000, 20, array("q"))
            for tags in charted
        }
        detector = Detector(config.measurement, config.thresholds, config.state_change_count, 0)
        detector.observer = ChartObserver("cpu", traces, charted)
        source = BatchSource(settings, console, SchemaQueries(), False, only)
        for batch, tag_names in source.read("charting"):
            detector.process(batch.rows, tag_names)
        return {key: (list(t.times), list(t.values), list(t.uppers)) for key, t in traces.items()}

    everything = traced(None)
    assert all(len(times) > 500 for times, _, _ in everything.values())
    assert traced(SeriesLines("cpu", charted)) == everything


def _trace_of(values, alert_indexes, window, expected_points, edges):
    """What a ``SeriesTrace`` keeps of ``values`` (every third an outlier) fed in the batches
    between ``edges``."""
    from madcheck.replay.charts import SeriesTrace

    times = [1_700_000_000 * 10**9 + index * 10**10 for index in range(len(values))]
    alert_times = array("q", [times[index] for index in alert_indexes if index < len(values)])
    trace = SeriesTrace(expected_points, window, alert_times)
    bands = [(value - 1.0, value, value + 1.0) for value in values]
    flags = [index % 3 == 0 for index in range(len(values))]
    for start, end in itertools.pairwise(edges):
        trace.extend(
            times[start:end], values[start:end], [b[1] for b in bands[start:end]],
            [b[0] for b in bands[start:end]], [b[2] for b in bands[start:end]], flags[start:end],
        )  # fmt: skip
    zooms = [(list(zoom.times), list(zoom.values), zoom.outliers) for zoom in trace.zooms]
    kept = (trace.times, trace.values, trace.medians, trace.lowers, trace.uppers)
    return [list(column) for column in kept], list(trace.outlier_times), zooms


@settings(max_examples=80, deadline=None)
@given(
    values=st.lists(st.floats(-5.0, 5.0), min_size=1, max_size=240),
    alerts=st.lists(st.integers(0, 239), max_size=8),
    window=st.integers(2, 12),
    expected_points=st.integers(1, 6 * 5_000),
    cuts=st.lists(st.integers(0, 240), max_size=10),
)
def test_a_series_trace_keeps_the_same_whatever_the_batches(
    values, alerts, window, expected_points, cuts
):
    """Thinned line, outliers and incident zooms do not depend on how the charting pass's
    values arrive: in one batch, cut anywhere, or one by one."""
    count = len(values)
    whole = _trace_of(values, alerts, window, expected_points, [0, count])
    edges = [0, *sorted({cut for cut in cuts if cut < count}), count]
    assert _trace_of(values, alerts, window, expected_points, edges) == whole
    assert _trace_of(values, alerts, window, expected_points, list(range(count + 1))) == whole


def test_an_incident_zoom_shows_two_windows_before_the_alert_and_one_after():
    values = [float(index) for index in range(100)]
    _, _, zooms = _trace_of(values, [50, 53, 90], 5, 100, [0, 30, 52, 100])
    # the alert at 53 keeps the first zoom open 5 values past it; 90 opens a second
    assert [zoom_values for _, zoom_values, _ in zooms] == [
        [float(index) for index in range(40, 59)],
        [float(index) for index in range(80, 96)],
    ]


def test_charts_drawn_on_one_canvas_are_those_of_a_canvas_each(tmp_path, monkeypatch):
    """The figures kept between charts (one per layout) leave nothing of one chart in the next:
    every PNG is byte for byte the one a figure of its own gives."""
    import importlib

    runs = {"a": [60, 140], "b": [40, 150], "c": [100], "d": [30, 90, 170], "e": [120]}
    lines = [
        f"cpu,host={host} temp={value} {data.time_s(i)}"
        for i in range(data.POINTS)
        for host, starts in runs.items()
        for value in [50.0 if any(0 <= i - s < 3 for s in starts) else data.value("c", i)]
    ]
    drawn: list[tuple[bytes, bytes, int]] = []
    # the class the replay will use (another test may have imported the replay's modules anew)
    app = importlib.import_module("madcheck.replay.app")
    canvas_class = app.Visuals.produce.__globals__["ChartCanvas"]
    render = canvas_class.render

    def render_twice(self, stats, trace, marks):
        png = render(self, stats, trace, marks)
        drawn.append((png, render(canvas_class(), stats, trace, marks), len(trace.zooms)))
        return png

    monkeypatch.setattr(canvas_class, "render", render_twice)
    lp = data.write_lp(tmp_path / "cpu.lp", lines)
    assert replay(lp, "--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS,
                  "--plot", tmp_path / "plots") == 0  # fmt: skip
    assert sorted(zooms for _, _, zooms in drawn) == [1, 1, 2, 2, 3]
    for kept, fresh, _ in drawn:
        assert_png(kept)
        assert kept == fresh
