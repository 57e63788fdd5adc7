"""Throughput of line protocol parsing and of storage writes (run by hand, not by pytest).

python bench/bench_lineprotocol.py [lines]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from madcheck.engine.lineprotocol import parse_lines
from madcheck.engine.storage import Storage


def _lines(count: int, escaped: bool) -> str:
    if escaped:
        return "\n".join(
            f'cpu\\ load,host=h{i % 50},dc=eu\\ west usage={i % 97}.5,msg="ok \\"{i}\\"" '
            f"{1_764_446_400_000_000_000 + i}"
            for i in range(count)
        )
    return "\n".join(
        f"cpu,host=h{i % 50},dc=eu usage={i % 97}.5,count={i}i {1_764_446_400_000_000_000 + i}"
        for i in range(count)
    )


def _rate(label: str, count: int, seconds: float) -> None:
    print(f"{label:<40} {count / seconds:>12,.0f} lines/s")


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    for escaped in (False, True):
        body = _lines(count, escaped)
        start = time.perf_counter()
        parsed = sum(1 for _ in parse_lines(body))
        _rate(
            f"parse ({'escapes+strings' if escaped else 'plain'})",
            parsed,
            time.perf_counter() - start,
        )
    body = _lines(count, escaped=False)
    with tempfile.TemporaryDirectory() as directory, Storage(Path(directory)) as storage:
        chunk = body.split("\n")
        start = time.perf_counter()
        for offset in range(0, count, 5_000):
            storage.write_lp("bench", "\n".join(chunk[offset : offset + 5_000]))
        _rate("storage.write_lp (5000-line requests)", count, time.perf_counter() - start)


if __name__ == "__main__":
    main()
