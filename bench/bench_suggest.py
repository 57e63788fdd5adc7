"""``madcheck replay --suggest`` on a file with known injected anomalies, against ``temp:3:30:3``.

    .venv/bin/python bench/bench_suggest.py --points 1000000 --budget 1/week

Generates line protocol (tests/injected_data.py): ``--series`` hosts (default 50) reporting
``temp`` (normal noise, sigma 1, around 50) and ``load`` every 60 s; the first ``--anomalous``
(30) get 2 anomalies each, in turn a spike (1 point, +15 sigma), a burst (4 points, +10 sigma),
a level shift (40 points, +7 sigma) and a dip (3 points, -12 sigma); the other 20 are calm, and
the last ``--quantized`` (5) of those report whole numbers (so their MAD is mostly 0). Then:

1. ``--suggest temp --budget B`` (timed, CPU and wall clock);
2. ``temp:3:30:3`` and the suggested configuration replayed with ``--notify-recovery true
   --alerts``, so each incident's firing and recovery are in the alert file;

and prints, for both, incidents per series per day (all series, calm series only) and how many
injected anomalies had a firing of their series during them. Nothing is asserted here.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import injected_data

from madcheck.cli import main

STEP_S = 60
SEEDLIKE = "temp:3:30:3"


def run(argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        code = main(["replay", *argv, "--no-progress"])
    if code != 0:
        sys.exit(f"replay {argv} failed with exit status {code}")
    return out.getvalue()


def evaluate(
    path: Path, folder: Path, arguments: list[str], injected: list[injected_data.Injected],
    calm: set[str], series: int, days: float,
) -> dict[str, float]:  # fmt: skip
    alerts = folder / "alerts.jsonl"
    run([str(path), "--measurement", "cpu", *arguments, "--notify-recovery", "true",
         "--alerts", str(alerts)])  # fmt: skip
    rows = [json.loads(line) for line in alerts.read_text().splitlines()]
    opened: dict[str, int] = {}
    open_ids: set[str] = set()
    for row in rows:  # incidents from the plugin's own firing and resolved rows
        if row["state"] == "resolved":
            open_ids.discard(row["alert_id"])
        elif row["state"] == "firing" and row["alert_id"] not in open_ids:
            open_ids.add(row["alert_id"])
            opened[row["tags"]["host"]] = opened.get(row["tags"]["host"], 0) + 1
    firings = [
        (row["tags"]["host"], int(datetime.fromisoformat(row["time"]).timestamp()))
        for row in rows
        if row["state"] == "firing"
    ]
    caught = injected_data.caught(injected, firings, STEP_S)
    return {
        "fired": sum(1 for row in rows if row["state"] == "firing"),
        "incidents": sum(opened.values()),
        "rate": sum(opened.values()) / series / days,
        "calm_rate": sum(opened.get(h, 0) for h in calm) / len(calm) / days,
        "calm_worst": max((opened.get(h, 0) for h in calm), default=0) / days,
        "caught": len(caught),
    }


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--series", type=int, default=50)
    parser.add_argument("--anomalous", type=int, default=30)
    parser.add_argument("--quantized", type=int, default=5)
    parser.add_argument("--budget", default="1/week")
    options = parser.parse_args()
    steps = options.points // options.series
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        path = folder / "injected.lp"
        injected = injected_data.generate(
            path, options.series, steps, options.anomalous, quantized=options.quantized,
            step_s=STEP_S,
        )  # fmt: skip
        calm = {injected_data.host(i) for i in range(options.anomalous, options.series)}
        print(
            f"{steps * options.series:,} points, {options.series} series x {steps:,} steps of "
            f"{STEP_S} s; {len(injected)} anomalies injected in {options.anomalous} series, "
            f"{len(calm)} calm ({options.quantized} of them whole numbers)"
        )
        cpu, wall = time.process_time(), time.perf_counter()
        out = run([str(path), "--measurement", "cpu", "--suggest", "temp",
                   "--budget", options.budget, "--mad-thresholds", SEEDLIKE])  # fmt: skip
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(out, end="")
        print(f"--suggest took {cpu:.1f} s CPU, {wall:.1f} s wall clock\n")
        match = re.search(r"paste: mad_thresholds=(\S+?)(?:,mad_floor=(\S+))?$", out, re.M)
        assert match is not None
        suggested = ["--mad-thresholds", match.group(1)]
        if match.group(2):
            suggested += ["--mad-floor", match.group(2)]
        print(
            f"{'configuration':<34} {'alerts':>7} {'incidents':>9} {'per series/day':>14} "
            f"{'calm: mean':>10} {'calm: worst':>11} {'caught':>9}"
        )
        for label, arguments in (
            (SEEDLIKE, ["--mad-thresholds", SEEDLIKE]),
            (" ".join(suggested[1::2]).replace(" ", ", mad_floor="), suggested),
        ):
            days = (steps - 1) * STEP_S / 86_400  # the data time the replay spans
            result = evaluate(path, folder, arguments, injected, calm, options.series, days)
            print(
                f"{label:<34} {result['fired']:>7,.0f} {result['incidents']:>9,.0f} "
                f"{result['rate']:>14.3g} {result['calm_rate']:>10.3g} "
                f"{result['calm_worst']:>11.3g} {result['caught']:>4.0f} of {len(injected)}"
            )


if __name__ == "__main__":
    cli()
