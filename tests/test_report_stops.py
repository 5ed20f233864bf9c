"""The report marks trials that ended early and counts, per trend, how many were cut and by what:
synthetic sweeps written as real Parquet files, the report's HTML read back."""

import json
from html.parser import HTMLParser

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tune_sd.analysis import analyze, load_sweep
from tune_sd.analysis.figures import trends_figure
from tune_sd.analysis.stops import REASONS, stop_reasons, stops_per_trend
from synthetic_sweeps import synthetic_sweep


class Tables(HTMLParser):
    """Every <table> of a page as rows of cell texts, keyed by the <h2>/<h3> heading before it."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.heading, self._in, self._text, self._rows, self._row = "", None, "", None, None

    def handle_starttag(self, tag, attrs):
        if tag in ("h2", "h3", "th", "td"):
            self._in, self._text = tag, ""
        elif tag == "table":
            self._rows = []
        elif tag == "tr":
            self._row = []

    def handle_data(self, data):
        if self._in:
            self._text += data

    def handle_endtag(self, tag):
        if tag in ("h2", "h3"):
            self.heading = self._text.strip()
        elif tag in ("th", "td") and self._row is not None:
            self._row.append(self._text.strip())
        elif tag == "tr" and self._rows is not None:
            self._rows.append(self._row)
        elif tag == "table":
            key, i = self.heading, 2
            while key in self.tables:
                key, i = f"{self.heading} #{i}", i + 1
            self.tables[key] = self._rows
            self._rows = None
        if tag == self._in:
            self._in = None


def read_tables(path) -> dict[str, pd.DataFrame]:
    p = Tables()
    p.feed(path.read_text())
    return {k: pd.DataFrame(rows[1:], columns=rows[0]) for k, rows in p.tables.items() if rows}


def write_trials(folder, trials):
    pq.write_table(pa.Table.from_pandas(trials, preserve_index=False), folder / "trials.parquet")


PER_TREND = "Trials per trend: stopped early, by reason"


@pytest.fixture(scope="module")
def old(tmp_path_factory):
    """A sweep whose trials table predates stop reasons (only ``stopped_early``)."""
    folder = tmp_path_factory.mktemp("old") / "old"
    truth = synthetic_sweep(folder, n_per_trend=5, seed=4)
    # the exporter's table as it was before stop reasons were recorded
    trials = pd.read_parquet(folder / "trials.parquet")
    write_trials(folder, trials.drop(columns=["stop_reason", "stop_epoch"]))
    return folder, truth


def test_an_older_table_gets_reasons_from_stopped_early(old):
    folder, _ = old
    raw = pd.read_parquet(folder / "trials.parquet")
    assert raw.stopped_early.any() and not raw.stopped_early.all()
    s = load_sweep(folder)
    assert set(s.trials.stop_reason) == {"asha", "completed"}
    assert (s.trials.stop_reason == "asha").tolist() == raw.stopped_early.tolist()
    cut = s.trials[s.trials.stopped_early]
    assert (cut.stop_epoch == cut.epochs).all() and s.trials[~s.trials.stopped_early].stop_epoch.isna().all()
    # the sweep's recorded scheduler decides between the rank-based rules; an error is an error
    raw.loc[0, "status"] = "ERROR"
    reasons = stop_reasons(raw, scheduler="median")
    assert reasons[0] == "error" and set(reasons[1:][raw.stopped_early[1:]]) == {"median"}


def test_report_counts_the_cuts_per_trend_on_an_older_table(old):
    folder, _ = old
    report = analyze([str(folder)])
    text = report.read_text()
    assert "<h2>Early stopping</h2>" in text
    assert text.index("<h2>Trends</h2>") < text.index("<h2>Early stopping</h2>") < text.index(
        "<h2>What characterises each trend</h2>")
    tables = read_tables(report)
    per = tables[PER_TREND].set_index("trend")
    assert list(per.columns) == ["trials", "stopped early", *REASONS]
    trends = pd.read_parquet(report.parent / "trends.parquet")
    trials = pd.read_parquet(folder / "trials.parquet")
    want = trends.merge(trials, on="trial_id").groupby("trend").stopped_early.agg(["size", "sum"])
    for name, row in want.iterrows():
        assert int(per.loc[name, "trials"]) == row["size"]
        assert int(per.loc[name, "stopped early"]) == int(per.loc[name, "asha"]) == row["sum"]
        assert per.loc[name, ["median", "nonlearner", "error"]].astype(int).eq(0).all()
    assert int(per.loc["all", "trials"]) == len(trials)
    assert int(per.loc["all", "stopped early"]) == int(trials.stopped_early.sum())
    # every stopped trial is listed with its reason and epoch
    listed = tables["The trials that ended early"]
    cut = trials[trials.stopped_early]
    assert sorted(listed.trial_id) == sorted(cut.trial_id)
    for _, r in cut.iterrows():
        assert listed.set_index("trial_id").loc[r.trial_id, "stopped"] == f"asha @ {r.epochs}"
    # the best-models table says why and when a top trial was stopped, "-" for one that ran to the end
    top = tables["Best models across sweeps"].set_index("trial_id")
    for tid, cell in top["stopped early"].items():
        row = trials.set_index("trial_id").loc[tid]
        assert cell == (f"asha @ {row.epochs}" if row.stopped_early else "-")
    # the per-sweep trend profiles count the stopped trials too
    prof = tables["Sweep old (synthetic)"].set_index("hyperparameter")
    assert prof.loc["stopped early", "all"].startswith(f"{int(trials.stopped_early.sum())} (asha")


def test_recorded_reasons_are_counted_by_reason(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    truth = synthetic_sweep(a, n_per_trend=4, seed=6)
    synthetic_sweep(b, n_per_trend=3, seed=7, trends=("fast-plateau", "non-learner"))
    trials = pd.read_parquet(a / "trials.parquet")
    trials["stop_reason"] = "completed"
    trials["stop_epoch"] = None
    non = trials.trial_id.map(truth) == "non-learner"
    cut = trials.stopped_early
    # non-learners cut by the non-learner stopper, the other cut trials by the median rule, one error
    trials.loc[cut & non, "stop_reason"] = "nonlearner"
    trials.loc[cut & ~non, "stop_reason"] = "median"
    trials.loc[cut, "stop_epoch"] = trials.loc[cut, "epochs"]
    full = trials.index[~cut][0]
    trials.loc[full, ["status", "stop_reason", "stopped_early"]] = ["ERROR", "error", False]
    write_trials(a, trials)
    (a / "tune_sd.json").write_text(json.dumps({"name": "a", "study": "synthetic", "epochs": 9000,
                                                "settings": {"scheduler": "median+nonlearner"}}))

    report = analyze([str(a), str(b)], out=str(tmp_path / "both"))
    tables = read_tables(report)
    per = tables[PER_TREND]
    assert "sweep" not in per.columns  # pooled over the sweeps, as the trends are
    per = per.set_index("trend").astype(int)
    b_trials = pd.read_parquet(b / "trials.parquet")
    assert per.loc["all", "trials"] == len(trials) + len(b_trials)
    assert per.loc["all", "nonlearner"] == int((cut & non).sum()) > 0
    assert per.loc["all", "median"] == int((cut & ~non).sum()) > 0
    assert per.loc["all", "asha"] == int(b_trials.stopped_early.sum())  # b's older table: derived
    assert per.loc["all", "error"] == 1
    assert per.loc["all", "stopped early"] == per.loc["all", ["asha", "median", "nonlearner"]].sum()
    assert (per.drop(index="all")[["trials", "stopped early", *REASONS]].sum() == per.loc["all"]).all()
    listed = tables["The trials that ended early"]
    assert set(listed.sweep) == {"a", "b"}
    assert (listed.stopped.str.split(" @ ").str[0].value_counts().to_dict()
            == {k: v for k, v in {"asha": int(b_trials.stopped_early.sum()), "median": int((cut & ~non).sum()),
                                 "nonlearner": int((cut & non).sum()), "error": 1}.items() if v})


def test_the_trends_figure_marks_stopped_trials_by_reason(old):
    folder, _ = old
    from tune_sd.analysis import sweep_trends

    s = load_sweep(folder)
    trends, smoothed = sweep_trends([s], horizon=500)
    # as the pipeline calls it: trials that ended before their planned epochs get one marker
    fig = trends_figure(smoothed, trends)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == [f"ended before its planned epochs ({int(s.trials.stopped_early.sum())})"]
    assert f"{int(s.trials.stopped_early.sum())} ended early" in fig.axes[0].get_title()
    # with stop reasons beside the trends: one marker per reason
    reasons = s.trials.set_index("trial_id").stop_reason.copy()
    first, second = reasons[reasons == "asha"].index[:2]
    reasons[first] = "nonlearner"
    reasons[second] = "race"
    fig = trends_figure(smoothed, trends.assign(stop_reason=trends.trial_id.map(reasons)))
    labels = sorted(t.get_text() for t in fig.axes[0].get_legend().get_texts())
    n_asha = int(s.trials.stopped_early.sum()) - 2
    assert labels == sorted([f"stopped by ASHA ({n_asha})", "stopped as a non-learner (1)",
                             "raced out (worse than the best config) (1)"])


def test_per_trend_counts_without_any_stop(tmp_path):
    folder = tmp_path / "fifo"
    synthetic_sweep(folder, n_per_trend=2, seed=8, trends=("fast-plateau", "non-learner"))
    trials = pd.read_parquet(folder / "trials.parquet")
    trials["stopped_early"] = False
    trials["stop_reason"] = "completed"
    write_trials(folder, trials)
    s = load_sweep(folder)
    trends = pd.DataFrame({"trial_id": s.trials.trial_id, "trend": ["fast-plateau"] * 2 + ["non-learner"] * 2})
    per = stops_per_trend(trends, s.trials)
    assert per["stopped early"].sum() == 0 and per.loc["all", "trials"] == 4
    text = analyze([str(folder)]).read_text()
    assert "0 of 4 trials were stopped early" in text and "The trials that ended early" not in text
