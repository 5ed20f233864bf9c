"""The HParams dashboard of a sweep run with seeds: the seeds of a config form one session group (the
dashboard's mean and spread over them), and only the searched keys are listed, in the space's order.
The logger writes real event files for stand-in trials; TensorBoard's own plugin backend reads them back."""

from pathlib import Path

import pytest

pytest.importorskip("tensorboard")

from test_sweep_output import hparams_session_groups  # noqa: E402

from tune_sd.tune.stopping.replay import ReplayTrial  # noqa: E402


class _Trial(ReplayTrial):
    """What the logger reads of a Tune trial beside the schedulers' fake: its folder and metric analysis."""

    def __init__(self, trial_id, config, evaluated_params, local_path):
        super().__init__(trial_id, config, evaluated_params)
        self.local_path, self.metric_analysis = local_path, {}

    def init_local_path(self):
        Path(self.local_path).mkdir(parents=True, exist_ok=True)


def _trial(root, tid, lr, seed, repeat=None, in_size=1):
    config = {"arch": {"in_size": in_size, "lat_size": 3}, "disc": {"lr": lr}, "seed": seed}
    if repeat is not None:
        config["repeat"] = repeat
    return _Trial(tid, config, {"arch/in_size": in_size, "disc/lr": lr, "seed": seed}, str(root / f"trial_{tid}"))


def _run(root, trials, searched):
    from tune_sd.tune.tensorboard import SweepTensorBoard

    logger = SweepTensorBoard(searched=searched)
    for i, t in enumerate(trials):
        logger.log_trial_start(t)
        logger.log_trial_result(1, t, {"epoch": 10, "avg_acc": 0.6 + 0.01 * i})
        logger.log_trial_end(t)
    return hparams_session_groups(root)


def test_the_seeds_of_a_config_form_one_session_group_with_the_searched_keys_only(tmp_path):
    # 2 configs (disc.lr) x 3 seeds; arch.in_size was drawn from one value, so it is the same everywhere
    trials = [_trial(tmp_path, f"{c}{r}", lr, seed=100 * c + r, repeat=r) for c, lr in enumerate((1e-3, 1e-4))
              for r in range(3)]
    groups = _run(tmp_path, trials, searched=["disc.lr"])
    assert len(groups) == 2
    by_lr = {round(h["disc.lr"], 9): (h, m) for h, m in groups.values()}
    assert set(by_lr) == {1e-3, 1e-4}
    for lr, (hparams, metrics) in by_lr.items():
        assert set(hparams) == {"disc.lr"}  # no arch.in_size, no seed, no repeat
    assert _columns(trials[0]) == ["disc.lr"]
    # the group's metric is the mean over its seeds (0.60, 0.61, 0.62 for the first config)
    assert by_lr[1e-3][1]["hparams/final_avg_acc"] == pytest.approx(0.61, abs=1e-6)
    assert by_lr[1e-4][1]["hparams/final_avg_acc"] == pytest.approx(0.64, abs=1e-6)


def test_without_repeats_each_trial_is_its_own_group_with_its_seed(tmp_path):
    trials = [_trial(tmp_path, f"t{i}", lr, seed=i) for i, lr in enumerate((1e-3, 1e-3))]
    groups = _run(tmp_path, trials, searched=["disc.lr"])
    assert set(groups) == {"trial_t0", "trial_t1"}
    assert all(set(h) == {"disc.lr", "seed"} for h, _ in groups.values())
    assert _columns(trials[0]) == ["disc.lr", "seed"]  # the dashboard's columns: searched keys first


def test_the_searched_keys_come_in_the_spaces_order_before_the_labels(tmp_path):
    t = _trial(tmp_path, "v", 1e-3, seed=1)
    t.config["variant"] = "wide"
    _run(tmp_path, [t], searched=["disc.lr", "arch.lat_size"])
    assert _columns(t) == ["disc.lr", "arch.lat_size", "seed", "variant"]


def _columns(trial) -> list[str]:
    """The hyperparameters of the trial's HParams experiment record, in the dashboard's column order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    acc = EventAccumulator(trial.local_path)
    acc.Reload()
    content = acc.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.EXPERIMENT_TAG]
    return [h.name for h in metadata.parse_experiment_plugin_data(content).hparam_infos]
