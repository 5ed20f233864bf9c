"""Redraw analysis/figures/trends.png (the figure of docs/analysis.md): the trends figure of `tune-sd analyze` on
a synthetic sweep of the four Step 15.3 shapes (100 000 planned epochs, some trials stopped early).

    python analysis/readme_figure.py
"""

import shutil
import sys
import tempfile
from pathlib import Path

from tune_sd.analysis import analyze

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the synthetic sweeps are the tests' fixture
from synthetic_sweeps import synthetic_sweep  # noqa: E402

with tempfile.TemporaryDirectory() as tmp:
    folder = Path(tmp) / "synthetic"
    synthetic_sweep(folder, n_per_trend=8, seed=7, epochs=100_000, report_every=250)
    report = analyze([str(folder)])
    (HERE / "figures").mkdir(exist_ok=True)
    shutil.copyfile(report.parent / "trends.png", HERE / "figures" / "trends.png")
    print(f"wrote {HERE / 'figures' / 'trends.png'}")
