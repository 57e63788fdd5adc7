"""Line protocol parsing for ``madcheck replay``: another checkout's parser beside this one's.

    .venv/bin/python bench/bench_lineprotocol.py --reference /work/main/src [--lines 200000 1000000]

Both parse the same generated file (``bench_replay.py``'s: 50 series, ``cpu,host=h007
temp=50.123,load=0.456 1700000010``) into the rows a replay hands the plugin, and admit them
(``replay.stream.Admission``): what a replay does before the plugin sees a row. The two run in
this process, alternating, ``--repeat`` times each; the figure is the median CPU time per line
(a shared machine disturbs wall-clock time more). The reference checkout's modules are loaded
from its ``src`` under other names, so nothing of it mixes with this one's. A mixed file (every
other line another table) shows the per-line path, where runs of one shape do not form. Nothing
here is asserted: speed depends on the machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from bench_replay import generate  # this script's folder is on sys.path
from madcheck.replay.inputs import InputFile, InputOptions
from madcheck.replay.stream import Admission


def _load(name: str, path: Path, swapped: dict[str, ModuleType]) -> ModuleType:
    """Execute ``path`` as module ``name``; ``swapped`` stands in for its imports meanwhile."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = {key: sys.modules.get(key) for key in swapped}
    sys.modules.update(swapped)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        for key, value in saved.items():
            if value is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = value
    return module


def reference_reader(source: Path) -> Callable[[Path], int]:
    """The reference checkout's parse and admission of a file, as its replay did them."""
    package = source / "madcheck"
    parser = _load("reference_lineprotocol", package / "engine" / "lineprotocol.py", {})
    swapped = {"madcheck.engine.lineprotocol": parser}
    stream = _load("reference_stream", package / "replay" / "stream.py", swapped)

    def read(path: Path) -> int:
        admission = stream.Admission("cpu", lambda *_: None)
        with path.open(encoding="utf-8-sig", errors="replace", newline="") as text:
            blocks = parser.iter_row_blocks(text, "auto", default_time_ns=stream.NO_TIME)
            return sum(len(admitted.rows) for admitted in admission.rows(str(path), blocks))

    return read


def this_reader(path: Path) -> int:
    admission = Admission("cpu", lambda *_: None)
    blocks = InputFile(path).items(InputOptions("cpu"))
    return sum(len(admitted.rows) for admitted in admission.rows(str(path), blocks))


def mixed_file(path: Path, lines: int) -> None:
    """Every other line of another table: no run of one shape forms."""
    with path.open("w") as handle:
        for index in range(lines // 2):
            stamp = 1_700_000_000 + index * 10
            handle.write(f"cpu,host=h{index % 50:03d} temp={index % 97}.5,load=0.25 {stamp}\n")
            handle.write(f"mem,host=h{index % 50:03d} used={index % 89}.25 {stamp}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, help="another checkout's src directory")
    parser.add_argument("--lines", type=int, nargs="+", default=[200_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    readers: dict[str, Callable[[Path], int]] = {}
    if options.reference is not None:
        readers["reference"] = reference_reader(options.reference)
    readers["this"] = this_reader
    header = f"{'file':<22}" + "".join(f"{name + ' us/line':>18}" for name in readers)
    print(header + ("   reference/this" if len(readers) == 2 else ""))
    with tempfile.TemporaryDirectory() as folder:
        for lines in options.lines:
            for kind in ("bench_replay", "mixed"):
                path = Path(folder) / f"{kind}-{lines}.lp"
                if kind == "mixed":
                    mixed_file(path, lines)
                else:
                    generate(path, lines, 50)
                seconds: dict[str, list[float]] = {name: [] for name in readers}
                for _ in range(options.repeat):
                    for name, read in readers.items():
                        started = time.process_time()
                        rows = read(path)
                        seconds[name].append(time.process_time() - started)
                        if kind == "bench_replay" and rows != lines:
                            sys.exit(f"{name}: {rows} rows admitted of {lines} lines")
                medians = {name: statistics.median(values) for name, values in seconds.items()}
                row = f"{kind + ' ' + format(lines, ','):<22}" + "".join(
                    f"{medians[name] / lines * 1e6:>18.2f}" for name in readers
                )
                if len(readers) == 2:
                    row += f"   {medians['reference'] / medians['this']:>14.2f}x"
                print(row, flush=True)


if __name__ == "__main__":
    main()
