"""The notebooks in analysis/ run top to bottom on a small result set made here with the engine."""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

from synthetic_sweeps import engine_sweep  # noqa: E402

NOTEBOOKS = Path(__file__).resolve().parents[1] / "analysis"


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("nb")
    return engine_sweep(root / "nb_a", n_trials=3, epochs=40, seed=2), engine_sweep(root / "nb_b", n_trials=2,
                                                                                     epochs=30, seed=3)


def _run(name: str, env: dict, monkeypatch):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    return nb


def _text(nb) -> str:
    out = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            out.append(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")))
    return "\n".join(out)


@pytest.mark.slow
def test_sweep_notebook_runs(results, monkeypatch):
    a, _ = results
    nb = _run("sweep.ipynb", {"TUNE_SD_SWEEP": str(a)}, monkeypatch)
    text = _text(nb)
    assert "nb_a" in text and "fresh fakes taken for real" in text
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 2


@pytest.mark.slow
def test_compare_notebook_runs(results, monkeypatch):
    nb = _run("compare_studies.ipynb", {"TUNE_SD_SWEEPS": os.pathsep.join(map(str, results))}, monkeypatch)
    text = _text(nb)
    assert "nb_a" in text and "nb_b" in text
