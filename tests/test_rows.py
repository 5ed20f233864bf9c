"""Several report rows per Tune result (tune/report_rows.py): the span a trial gathers, the rows the driver's
readers take one by one, and decisions made on every report as when each report was a result."""

import pytest

from tune_sd.engine import resolve
from tune_sd.tune.cadence import MAX_RESULT_S, MAX_SPAN_REPORTS, MIN_RESULT_S, Cadence, result_interval
from tune_sd.tune.packing.plan import concurrent_trials
from tune_sd.tune.report_rows import ROWS, expand, span
from test_stoppers import stream


def test_a_span_ends_at_the_report_due_a_checkpoint_or_a_figure():
    c = Cadence(report_every=25, checkpoint_every=10, figure_every=20)
    assert c.span(0) == 1            # the first report draws a figure
    assert c.span(1) == 9            # then up to the checkpoint at report 10
    assert c.span(10) == 10 and c.span(13) == 7
    spans, at = [], 0
    while at < 60:
        at += c.span(at)
        spans.append(at)
    assert spans == [1, 10, 20, 30, 40, 50, 60]  # every due report ends a span: none is skipped
    assert Cadence(report_every=25).span(0) > 100  # nothing due: the time bound ends the span



def test_checkpoints_and_figures_are_paced_by_the_clock_unless_a_count_is_given():
    c = Cadence.of(resolve())  # the defaults: a checkpoint every 5 minutes, a figure every 15
    assert (c.checkpoint_every, c.checkpoint_s, c.figure_every, c.figure_s) == (0, 300.0, 0, 900.0)
    assert not c.checkpoint_due(7, since_s=299.0) and c.checkpoint_due(8, since_s=300.0)
    assert c.figure_due(1) and not c.figure_due(2, since_s=899.0) and c.figure_due(3, since_s=900.0)
    assert c.figure_due(4, since_s=1.0, done=True)  # a run ends with a figure
    assert c.span(0) == 1 and c.span(1) == MAX_SPAN_REPORTS  # the first figure; then the time bound ends a span
    # a count of reports takes the clock's place; figure_every 0: no figure at all
    c = Cadence.of(resolve(overrides=["checkpoint_every=4", "figure_every=0", "checkpoint_minutes=1"]))
    assert c.checkpoint_due(8) and not c.checkpoint_due(9, since_s=1e9) and c.checkpoint_s == 0
    assert not c.figure_due(1) and not c.figure_due(5, since_s=1e9, done=True) and c.span(0) == 4
    # the cadence travels to a packed trial's process as a plain dict
    assert Cadence(**c.to_dict()) == c


def test_the_driver_gets_a_bounded_rate_of_results():
    assert result_interval(1) == MIN_RESULT_S and result_interval(10**6) == MAX_RESULT_S
    assert result_interval(32) == pytest.approx(2 * result_interval(16))
    settings = {"pack": "off", "cpus_per_trial": 1, "gpus_per_trial": 0}
    assert concurrent_trials(settings, 8) == 8
    assert concurrent_trials({**settings, "pack": 4}, 8) == 32
    assert concurrent_trials({**settings, "pack": "auto"}, 2, sizes={("k",): 8, ("j",): 2}) == 16


def test_expand_gives_every_report_with_the_results_context():
    rows = [{"epoch": 25, "acc": 0.5, "training_iteration": 1, "done": False},
            {"epoch": 50, "acc": 0.6, "training_iteration": 2, "done": False}]
    last = {"epoch": 75, "acc": 0.7, "training_iteration": 3, "done": True}
    result = {**span(rows + [last]), "trial_id": "t1", "config": {"seed": 1}, "should_checkpoint": True,
              "stop_reason": "asha", "stop_p": 0.01}
    assert len(result[ROWS]) == 2
    out = expand(result)
    assert [r["epoch"] for r in out] == [25, 50, 75]
    assert [r["training_iteration"] for r in out] == [1, 2, 3]
    assert all(r["trial_id"] == "t1" and r["config"] == {"seed": 1} for r in out)
    for r in out[:2]:  # an earlier row neither ends the trial, nor checkpoints, nor says why it stopped
        assert not r["done"] and "should_checkpoint" not in r and "stop_reason" not in r and "stop_p" not in r
    assert out[2]["done"] and out[2]["stop_reason"] == "asha" and ROWS not in out[2]
    plain = {"epoch": 25, "acc": 0.5}
    assert expand(plain)[0] is plain  # a result of one report is itself (callbacks edit it in place)


def test_the_nonlearner_stopper_decides_on_every_row_of_a_result():
    """The same flat stream, one report per result and ten per result: the decision falls on the same
    report (the trial then stops at the end of its span)."""
    from tune_sd.tune.stopping.nonlearner_stopper import NonLearnerStopper

    reports = stream(lambda e: 0.5 + 0 * e, epochs=6000)
    one = NonLearnerStopper()
    single = next(r["epoch"] for r in reports if one("t", r))
    many, decided_in = NonLearnerStopper(), None
    for i in range(0, len(reports), 7):
        if many("t", span(reports[i:i + 7])):
            decided_in = reports[i:i + 7]
            break
    assert decided_in is not None and decided_in[0]["epoch"] <= single <= decided_in[-1]["epoch"]
    # it read every report up to the deciding one, no further
    assert [p[0] for p in many.rule.history["t"]] == [r["epoch"] for r in reports if r["epoch"] <= single]


def test_asha_cuts_at_its_rung_inside_a_span():
    """ASHA's rung is a report inside a result's span: it decides there, as it would per report."""
    from ray.tune.experiment import Trial
    from ray.tune.schedulers import TrialScheduler

    from tune_sd.tune.stopping.schedulers import make_scheduler
    from tune_sd.tune.stopping.records import StopRecorder

    recorder = StopRecorder()
    asha = make_scheduler("asha", epochs=1000, report_every=25, grace_period=100, reduction_factor=2,
                          recorder=recorder)
    asha.set_search_properties("acc", "max")
    trials = [Trial("x", trial_id=f"t{i}", stub=True) for i in range(2)]
    for t in trials:
        asha.on_trial_add(None, t)

    def reports(level, later=None):
        return [{"epoch": e, "acc": level if e <= 100 or later is None else later, "training_iteration": e // 25}
                for e in range(25, 201, 25)]

    assert asha.on_trial_result(None, trials[0], span(reports(0.9))) == TrialScheduler.CONTINUE
    # the weaker trial is at 0.1 at the rung (epoch 100), inside its span of 8 reports, and better than
    # the first only at the span's end: it is cut on its value at the rung, as per report
    assert asha.on_trial_result(None, trials[1], span(reports(0.1, later=0.95))) == TrialScheduler.STOP
    assert recorder._decided == {"t1": "asha"}
