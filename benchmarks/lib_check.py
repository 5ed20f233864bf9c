"""`tune-sd lib check` speed: milliseconds per library line on a library made from the ladder's lines.

The library repeats every line of funs/ladder/*.lib (its derivative columns included) until it holds
--lines lines, and is checked as `tune-sd lib check` does (default inputs, 256 coefficient draws).

    python benchmarks/lib_check.py [--lines 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from tune_sd.engine.data import load_data
from tune_sd.engine.library import FUNS_DIR
from tune_sd.engine.library_check import check_library


def ladder_lines() -> list[str]:
    lines: list[str] = []
    for path in sorted((FUNS_DIR / "ladder").glob("*.lib")):
        for raw in path.read_text().splitlines():
            code = raw.split("#", 1)[0].strip()
            if code and code not in lines:
                lines.append(code)
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=256)
    args = ap.parse_args()
    base = ladder_lines()
    lines = [base[i % len(base)] for i in range(args.lines)]
    X = load_data(None, var="X10", n_features=2).points("train", [0, 1])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.lib"
        path.write_text("\n".join(lines) + "\n")
        times = []
        for _ in range(args.rounds):
            t = time.perf_counter()
            check = check_library(path, X, var="X10", n_samples=args.samples)
            times.append(time.perf_counter() - t)
    best = min(times)
    print(f"{'lines':>6}  {'distinct':>8}  {'samples':>7}  {'total s (best)':>14}  {'median s':>8}  {'ms/line':>7}  ok")
    print(f"{len(lines):>6}  {len(base):>8}  {args.samples:>7}  {best:>14.2f}  {statistics.median(times):>8.2f}  "
          f"{1000 * best / len(lines):>7.2f}  {check.ok}")


if __name__ == "__main__":
    main()
