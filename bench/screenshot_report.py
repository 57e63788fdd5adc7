"""A picture of ``madcheck replay --report`` as a browser shows it (run by hand, not by pytest).

    .venv/bin/python bench/screenshot_report.py docs/replay-report.png

Generates a small recording (4 hosts, one of them with incidents), replays it with ``--report``
and has headless Chromium (``apt-get install -y chromium``) take a screenshot of the page, with a
fresh profile and no network use. The PNG is for looking at: the README shows one.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from madcheck.cli import main

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def recording(path: Path, seed: int = 3) -> None:
    rng = random.Random(seed)
    start_s = 1_764_400_000
    lines = []
    for step in range(4_000):
        for host in ("web-1", "web-2", "db-1", "db-2"):
            value = rng.gauss(55.0 if host.startswith("db") else 40.0, 1.5)
            if host == "db-1" and (1_200 <= step < 1_206 or 2_900 <= step < 2_905):
                value += 14.0  # two incidents
            if host == "web-2" and step in (700, 701, 702, 3_300, 3_301, 3_302):
                value -= 9.0
            lines.append(f"cpu,host={host} temp={value:.2f},load={rng.random():.2f} "
                         f"{start_s + step * 30}")  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


def screenshot(page: Path, png: Path, width: int, height: int) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("chromium not found: apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
             f"--window-size={width},{height}", f"--screenshot={png.resolve()}",
             page.resolve().as_uri()],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip


def _shrink(png: Path) -> None:
    """256 colours are plenty for a page of charts, and a third of the bytes (Pillow comes with
    matplotlib)."""
    from PIL import Image

    with Image.open(png) as image:
        image.convert("RGB").quantize(colors=256, method=Image.Quantize.MAXCOVERAGE).save(
            png, optimize=True
        )


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=1500)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data = Path(folder) / "cpu-week.lp"
        page = Path(folder) / "replay.html"
        recording(data)
        here = Path.cwd()
        os.chdir(folder)  # the page names the file as given: cpu-week.lp, not a temp path
        try:
            code = main(["replay", data.name, "--mad-thresholds", "temp:3:30:3",
                         "--report", page.name, "--no-progress"])  # fmt: skip
        finally:
            os.chdir(here)
        if code != 0:
            sys.exit(f"replay failed with exit status {code}")
        screenshot(page, options.png, options.width, options.height)
    _shrink(options.png)
    print(f"screenshot written to {options.png}")


if __name__ == "__main__":
    cli()
