"""``madcheck replay``: run recorded data through the MAD plugin and show what would have fired.

Only the command line is defined here; the replay lives in ``app.py``. Charts (``--plot``,
``--report``) need the ``replay`` extra (``matplotlib``), checked when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

INSTALL_HINT = "pip install -e '.[replay]' in the madcheck checkout"
FORMATS = ("auto", "lp", "csv")
EXAMPLES = """examples:
  madcheck replay week.lp.gz --mad-thresholds temp:2.5:20:5
  madcheck replay week.lp --measurement cpu --mad-thresholds temp:2.5:20:5 \\
      --state-change-count 3 --alerts alerts.csv --report replay.html
  madcheck replay export.csv --measurement cpu --mad-thresholds temp:3:50:2m --tags rack

  which k and window would have paged how often (one line per combination):
  madcheck replay week.lp --mad-thresholds temp:3:20:5 --sweep k=2,2.5,3 window_count=10,20,50 \\
      --budget 1/day

  thresholds suggested from history, at most one incident per series per week:
  madcheck replay week.lp --measurement cpu --suggest temp --budget 1/week
"""

#: ``--mad-thresholds``, where users choose k: what k means for normal data (README, "Choosing k",
#: has the measured table; tests/test_choosing_k.py checks both).
MAD_THRESHOLDS_HELP = (
    "field:k:window_count:threshold joined by @, e.g. temp:2.5:20:5@load:3:10:2m. "
    "k multiplies the MAD, and for normal data MAD = 0.6745 sigma: k=3 is a band of about "
    "+-2 sigma, which flags about 5%% of calm points at window 100 (7%% at window 20); "
    "k=4 about 1%%, k=5 about 0.2%%. A flat series has MAD 0: see --mad-floor."
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="backtest a configuration on recorded line protocol or CSV",
        description=(
            "Run recorded data through the MAD plugin and show which alerts would have fired. "
            "Any other trigger argument can be given as --name value after the files (e.g. "
            "--state-change-count 3); nothing is sent unless --send."
        ),
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="LP or CSV, .gz ok")
    parser.add_argument(
        "--measurement",
        metavar="TABLE",
        help="the table to check (default: the input's only table)",
    )
    parser.add_argument("--mad-thresholds", metavar="SPEC", help=MAD_THRESHOLDS_HELP)
    parser.add_argument(
        "--config", type=Path, metavar="FILE.toml", help="a trigger's TOML file (the command wins)"
    )
    parser.add_argument(
        "--silences",
        type=Path,
        metavar="FILE.lp",
        help="rows of the silences table (mad_silences), as line protocol written to a server",
    )
    parser.add_argument("--format", choices=FORMATS, default="auto", help="default: by name")
    parser.add_argument(
        "--precision", default="auto", metavar="UNIT", help="auto|s|ms|us|ns for timestamps"
    )
    parser.add_argument(
        "--tags", default="", metavar="A,B", help="CSV: columns that are tags (a,b)"
    )
    parser.add_argument(
        "--fields", default="", metavar="A,B", help="CSV: columns that are fields (a,b)"
    )
    parser.add_argument(
        "--flush-interval",
        metavar="DURATION",
        help="also end a plugin call after this much data time, as engine flushes (1s)",
    )
    parser.add_argument(
        "--max-batch-rows", type=int, default=50_000, metavar="N", help="rows per call (50000)"
    )
    parser.add_argument(
        "--alerts", type=Path, metavar="FILE", help="write every alert to FILE.jsonl or FILE.csv"
    )
    parser.add_argument("--plot", type=Path, metavar="DIR", help="one PNG per alerting series")
    parser.add_argument(
        "--plot-limit", type=int, default=10, metavar="N", help="charts at most (default 10)"
    )
    parser.add_argument("--report", type=Path, metavar="FILE", help="a self-contained HTML page")
    parser.add_argument(
        "--sweep",
        nargs="+",
        metavar="NAME=V1,V2",
        help="compare combinations of k, window_count, threshold, state_change_count: "
        "--sweep k=2,3 window_count=10,20",
    )
    parser.add_argument(
        "--budget",
        metavar="N/PERIOD",
        help="incidents per series you accept, e.g. 1/day, 1/week, 3/d, 2/h: --sweep sorts and "
        "marks the combinations within it, --suggest searches within it (default 1/week)",
    )
    parser.add_argument(
        "--suggest",
        metavar="FIELD",
        help="search k, window_count, the count threshold (and mad_floor when the MAD is "
        "often 0) for FIELD and print the best configurations within --budget, with the "
        "mad_thresholds argument to paste",
    )
    parser.add_argument("--send", action="store_true", help="deliver to a running notifier")
    parser.add_argument(
        "--port", metavar="PORT", help="--send: the notifier's port (port_override)"
    )
    parser.add_argument("--token", help="--send: the notifier's token (or INFLUXDB3_AUTH_TOKEN)")
    parser.add_argument(
        "--notification-path", metavar="PATH", help="--send: the notifier's request path"
    )
    parser.add_argument(
        "--plugin", type=Path, metavar="FILE", help="the mad_check_plugin.py to run"
    )
    parser.add_argument(
        "--top", type=int, default=30, metavar="N", help="summary rows shown (default 30)"
    )
    parser.add_argument(
        "--max-errors-shown", type=int, default=20, metavar="N", help="bad lines shown (20)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress line")
    parser.set_defaults(handler=run, extra_arguments=[])


def run(options: argparse.Namespace) -> int:
    try:
        from madcheck.replay.app import replay_command
    except ImportError as error:
        missing = (error.name or "a module").split(".")[0]
        print(
            f"madcheck replay: error: {missing} is not installed: {INSTALL_HINT}", file=sys.stderr
        )
        return 2
    return replay_command(options)
