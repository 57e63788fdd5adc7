"""Incidents, budgets and ``--suggest`` of ``madcheck replay``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from madcheck.cli import main
from madcheck.replay.incidents import BudgetError, parse_budget
from tests import injected_data
from tests import replay_data as data

STEP_S = 60


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")


def replay(*args: object) -> int:
    return main(["replay", *(str(a) for a in args), "--no-progress"])


def totals_line(out: str) -> dict[str, float]:
    match = re.search(
        r"([\d,]+) alerts? fired.*; ([\d,]+) incidents? in ([\d,]+) of ([\d,]+) series, "
        r"([\d.e+-]+|n/a) per series per day over ([\d.e+-]+) days",
        out,
    )
    assert match, out
    fired, incidents, with_incidents, series = (
        int(match.group(n).replace(",", "")) for n in range(1, 5)
    )
    return {
        "fired": fired,
        "incidents": incidents,
        "series_with_incidents": with_incidents,
        "series": series,
        "days": float(match.group(6)),
    }


def test_replay_counts_incidents_not_refires(tmp_path, capsys):
    lp = data.write_lp(tmp_path / "cpu.lp")
    assert replay(lp, "--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS) == 0
    totals = totals_line(capsys.readouterr().out)
    # host a's run of 6 fires twice in one incident; its run of 3 and b's dip are two more
    assert totals["fired"] == 4
    assert totals["incidents"] == 3
    assert totals["series_with_incidents"] == 2 and totals["series"] == 3
    assert totals["days"] == pytest.approx((data.POINTS - 1) * data.STEP_S / 86_400, rel=1e-2)


def test_incidents_do_not_depend_on_repeat_interval(tmp_path, capsys):
    """With repeat_interval the incidents come from a shadow trigger (a recovery would let the
    user's trigger repeat sooner): the alerts sent change, the incidents do not."""
    lp = data.write_lp(tmp_path / "cpu.lp")
    common = ("--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS)
    replay(lp, *common)
    plain = totals_line(capsys.readouterr().out)
    out = tmp_path / "alerts.jsonl"
    replay(lp, *common, "--repeat-interval", "1h", "--alerts", out)
    gated = totals_line(capsys.readouterr().out)
    # a fires at 62, 142 and 145 (10 s apart each step): the last two are within the hour of
    # the first and held back, as no recovery (off) ended the first episode for the gate
    assert (gated["fired"], plain["fired"]) == (2, 4)
    # the episodes are the plugin's all the same: a recovered after 62, then was abnormal again
    assert gated["incidents"] == plain["incidents"] == 3
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {row["state"] for row in rows} == {"firing"}  # no recovery shown: it is off


def test_recoveries_asked_for_are_shown(tmp_path, capsys):
    lp = data.write_lp(tmp_path / "cpu.lp")
    replay(lp, "--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS,
           "--notify-recovery", "true")  # fmt: skip
    out = capsys.readouterr().out
    assert "3 resolved" in out
    assert totals_line(out)["incidents"] == 3


def _sweep_table(out: str) -> tuple[list[str], list[list[str]]]:
    lines = out.splitlines()
    start = lines.index("madcheck replay --sweep")
    headings = [cell.strip() for cell in lines[start + 1].split("│")]
    rows = []
    for line in lines[start + 3 :]:
        if "│" not in line:
            break
        cells = [cell.strip() for cell in line.split("│")]
        rows.append(cells + [""] * (len(headings) - len(cells)))
    return headings, rows


def test_sweep_sorts_and_marks_the_budget(tmp_path, capsys):
    lp = tmp_path / "noisy.lp"
    injected_data.generate(lp, series=4, steps=1500, anomalous=2)
    code = replay(lp, "--measurement", "cpu", "--mad-thresholds", "temp:3:20:1",
                  "--sweep", "k=2.5,3,4,6,10", "--budget", "2/day")  # fmt: skip
    assert code == 0
    headings, rows = _sweep_table(capsys.readouterr().out)
    assert headings[-1] == "within 2/day"
    rate = headings.index("per series per day")
    rates = [float(row[rate]) for row in rows]
    assert rates == sorted(rates)  # fewest incidents first
    marks = [row[-1] == "yes" for row in rows]
    assert marks == [value <= 2.0 for value in rates]
    assert any(marks) and not all(marks)  # the budget really splits the combinations
    # the rate is the incidents per series per day of the data (4 series, 1499 minutes)
    incidents = headings.index("incidents")
    for row in rows:
        expected = int(row[incidents]) / 4 / (1499 * 60 / 86_400)
        assert float(row[rate]) == pytest.approx(expected, rel=5e-3)


@pytest.mark.parametrize(
    ("text", "per_day"),
    [("1/day", 1.0), ("1/week", 1 / 7), ("3/d", 3.0), ("0.5/w", 0.5 / 7), ("2/h", 48.0),
     (" /week ", 1 / 7)],
)  # fmt: skip
def test_budgets_read_as_incidents_per_series_per_day(text, per_day):
    assert parse_budget(text).per_day == pytest.approx(per_day)


@pytest.mark.parametrize("text", ["", "1", "day", "1/month", "0/day", "-1/day", "1/", "x/day",
                                  "1e9999/day", "1/day/day"])  # fmt: skip
def test_bad_budgets_are_refused(text):
    with pytest.raises(BudgetError, match="--budget"):
        parse_budget(text)


def test_bad_budget_on_the_command_line_is_a_clear_error(tmp_path, capsys):
    lp = data.write_lp(tmp_path / "cpu.lp")
    code = replay(lp, "--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS,
                  "--sweep", "k=2,3", "--budget", "1/month")  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "--budget '1/month': expected incidents per series per period" in err
    code = replay(lp, "--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS,
                  "--budget", "1/day")  # fmt: skip
    assert code == 2
    assert "--budget goes with --sweep or --suggest" in capsys.readouterr().err


def _firings(path: Path) -> list[tuple[str, int]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    from datetime import datetime

    return [
        (row["tags"]["host"], int(datetime.fromisoformat(row["time"]).timestamp()))
        for row in rows
        if row["state"] == "firing"
    ]


def test_suggest_finds_the_injected_anomalies_within_the_budget(tmp_path, capsys):
    lp = tmp_path / "injected.lp"
    # 8 series over 2.1 days: 4 with 2 anomalies each, 4 calm, one of them whole numbers
    injected = injected_data.generate(lp, series=8, steps=3000, anomalous=4, quantized=1)
    code = replay(lp, "--measurement", "cpu", "--suggest", "temp", "--budget", "1/day")
    out = capsys.readouterr().out
    assert code == 0, out
    match = re.search(r"paste: mad_thresholds=(\S+?)(?:,mad_floor=(\S+))?$", out, re.M)
    assert match, out
    condition, floor = match.group(1), match.group(2)
    assert "MAD is often 0, so mad_floor" in out  # the whole-number series
    alerts = tmp_path / "alerts.jsonl"
    extra = ["--mad-floor", floor] if floor else []
    replay(lp, "--measurement", "cpu", "--mad-thresholds", condition, *extra,
           "--notify-recovery", "true", "--alerts", alerts)  # fmt: skip
    totals = totals_line(capsys.readouterr().out)
    assert totals["incidents"] / totals["series"] / totals["days"] <= 1.0
    found = injected_data.caught(injected, _firings(alerts), STEP_S)
    assert found == injected
    # the calm series stay within the budget too
    calm = {injected_data.host(i) for i in range(4, 8)}
    rows = [json.loads(line) for line in alerts.read_text().splitlines()]
    for host in calm:
        opened = sum(1 for row in rows if row["tags"]["host"] == host and row["state"] == "firing")
        assert opened / totals["days"] <= 1.0, host
    # and the seed-like configuration would not have
    replay(lp, "--measurement", "cpu", "--mad-thresholds", "temp:3:30:3")
    seedlike = totals_line(capsys.readouterr().out)
    assert seedlike["incidents"] / seedlike["series"] / seedlike["days"] > 1.0


def test_suggest_refuses_what_it_cannot_judge(tmp_path, capsys):
    lp = data.write_lp(tmp_path / "cpu.lp")
    assert replay(lp, "--measurement", "cpu", "--suggest", "nosuch") == 2
    assert "no numeric values of field 'nosuch'" in capsys.readouterr().err
    assert replay(lp, "--measurement", "cpu", "--suggest", "temp", "--alerts",
                  tmp_path / "a.csv") == 2  # fmt: skip
    assert "--suggest prints suggestions only" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("field", "message"),
    [("", "--suggest needs a field name"), ("a@b", "cannot contain '@'"),
     ("a,b", "cannot contain ','")],
)  # fmt: skip
def test_suggest_refuses_fields_mad_thresholds_cannot_name(tmp_path, capsys, field, message):
    lp = data.write_lp(tmp_path / "cpu.lp")
    assert replay(lp, "--measurement", "cpu", "--suggest", field) == 2
    assert message in capsys.readouterr().err


def test_suggest_compares_the_given_condition_only_when_given(tmp_path, capsys):
    lp = data.write_lp(tmp_path / "cpu.lp")
    replay(lp, "--measurement", "cpu", "--suggest", "temp", "--budget", "3/day")
    assert "yours," not in capsys.readouterr().out
    replay(lp, "--measurement", "cpu", "--suggest", "temp", "--budget", "3/day",
           "--mad-thresholds", data.THRESHOLDS)  # fmt: skip
    out = capsys.readouterr().out
    # the hand-worked incidents of replay_data: 3 over 3 series and 1,990 s
    assert re.search(r"yours, temp:3:20:3: 3 incidents, 43\.4 per series per day", out), out


def test_report_summary_shows_the_incidents(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    lp = data.write_lp(tmp_path / "cpu.lp")
    page = tmp_path / "replay.html"
    assert replay(lp, "--measurement", "cpu", "--mad-thresholds", data.THRESHOLDS,
                  "--report", page) == 0  # fmt: skip
    capsys.readouterr()
    text = page.read_text()
    assert "3 incidents in 2 of 3 series, 43.4 per series per day over 0.023 days" in text
    assert "<th>incidents</th>" in text
    assert "resolved</td>" not in text  # the internal recoveries are not shown
