"""What ``k`` means for normal data (issue 16): the README's table, measured by the detector.

A seeded sample of calm normal values goes through the real detector with a count-1 rule (every
outlier fires); the share of outliers must match the figures the README prints for each k and
window, and the ``--mad-thresholds`` help must say what k is in sigma.
"""

from __future__ import annotations

import random
import re
from statistics import NormalDist

import pytest

from madcheck.config.thresholds import Threshold
from madcheck.detect.detector import Detector
from madcheck.replay.command import MAD_THRESHOLDS_HELP
from tests.support import REPO

SAMPLE = 100_000
SEED = 16
#: the README rounds to 0.01 percentage points; the seeded sample is the same on every run, so a
#: larger gap means the detector's verdicts (or the table) changed
TOLERANCE = 0.02
#: a README row: k, the band in sigma, then the three percentages
_ROW = re.compile(
    r"\| (\d+(?:\.\d+)?) \| ±([\d.]+) \N{GREEK SMALL LETTER SIGMA} "
    r"\| ([\d.]+)% \| ([\d.]+)% \| ([\d.]+)% \|"
)


def _readme_table() -> dict[float, tuple[float, float, float, float]]:
    """``k -> (sigma, window 20 %, window 100 %, infinite window %)`` from README.md."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("### Choosing `k`", 1)[1].split("###", 1)[0]
    table = {}
    for line in section.splitlines():
        match = _ROW.fullmatch(line)
        if match:
            k, sigma, w20, w100, infinite = map(float, match.groups())
            table[k] = (sigma, w20, w100, infinite)
    return table


@pytest.fixture(scope="module")
def calm_rows() -> list[dict]:
    rng = random.Random(SEED)
    return [{"temp": rng.gauss(0.0, 1.0), "time": i} for i in range(SAMPLE)]


def _share(rows: list[dict], k: float, window: int) -> float:
    detector = Detector("calm", [Threshold("temp", k, window, count=1)])
    outliers = len(detector.process(rows, []).alerts)
    return 100 * outliers / (len(rows) - window + 1)


def test_the_readme_table_has_the_rows_users_choose_from() -> None:
    assert sorted(_readme_table()) == [2.0, 3.0, 4.0, 5.0]


@pytest.mark.parametrize("k", [2.0, 3.0, 4.0, 5.0])
def test_each_row_is_what_the_detector_does_on_calm_normal_data(
    calm_rows: list[dict], k: float
) -> None:
    sigma, window_20, window_100, infinite = _readme_table()[k]
    assert sigma == pytest.approx(0.6745 * k, abs=0.005)
    assert infinite == pytest.approx(200 * (1 - NormalDist().cdf(0.6745 * k)), abs=0.005)
    assert _share(calm_rows, k, 20) == pytest.approx(window_20, abs=TOLERANCE)
    assert _share(calm_rows, k, 100) == pytest.approx(window_100, abs=TOLERANCE)


def test_the_help_where_k_is_chosen_says_it_in_sigma_with_the_tables_figures() -> None:
    help_text = MAD_THRESHOLDS_HELP.replace("%%", "%")
    assert "MAD = 0.6745 sigma" in help_text and "k=3 is a band of about +-2 sigma" in help_text
    table = _readme_table()
    assert f"about {round(table[3.0][2])}% of calm points at window 100" in help_text
    assert f"({round(table[3.0][1])}% at window 20)" in help_text
    assert f"k=4 about {round(table[4.0][2])}%" in help_text
