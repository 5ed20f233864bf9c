"""TensorBoard for a sweep: each trial's metrics stepped by epoch, and the HParams dashboard.

Tune's own TensorBoard logger steps scalars by report number while the trainable's figures are
stepped by epoch, and it writes Ray's bookkeeping (``done``, ``should_checkpoint``, ``time_*``,
``iterations_since_restore``, ...) as scalars beside the metrics. :class:`SweepTensorBoard` takes its
place (it is a ``TBXLoggerCallback``, so Tune adds no other) and writes, into each trial's folder:

- ``ray/tune/<metric>``: every number the trial reports that is not Ray's bookkeeping, at step = epoch;
- ``hparams/final_<metric>`` and ``hparams/best_<metric>``: the metric's latest and best value so far;
- the HParams plugin's records: the trial's hyperparameters (what the search drew: its
  ``evaluated_params``, and the variant/rung labels) and, as the dashboard's metrics, the final and
  best values above. A trial's session ends (success or failure) when the trial does.

The dashboard lists the keys the sweep searches (``searched``: the space's swept keys and those its
named axes set), in the space's order; a key drawn from a single value is the same in every trial and is
left out (it would take the table's first columns). The seeds of one config (``--repeat``: a ``repeat``
label, and its own ``seed`` and ``data.seed``) form one session group, named by the config's values, so
that the dashboard shows a config's mean and spread over its seeds instead of one row per seed.

Tune's JSON and CSV loggers, which the Parquet export reads, are left as they are.
"""

from __future__ import annotations

import json
import math
import time
from numbers import Number

from ray.tune.logger import TBXLoggerCallback
from ray.tune.result import AUTO_RESULT_KEYS, DEBUG_METRICS, DONE, SHOULD_CHECKPOINT

from tune_sd.seeds import without_seeds
from tune_sd.store import LABELS
from tune_sd.tracking.names import MISSING, group_name, lookup

from tune_sd.tune.report_rows import expand

#: what Ray adds to every result (and what the trainable adds for Ray), never plotted: the step is the epoch
BOOKKEEPING = frozenset(AUTO_RESULT_KEYS) | frozenset(DEBUG_METRICS) | {
    DONE, SHOULD_CHECKPOINT, "experiment_tag", "warmup_time", "epoch"}
SCALAR_PREFIX = "ray/tune/"
HPARAMS_PREFIX = "hparams/"


def hparam_value(value):
    """A hyperparameter as the HParams plugin stores it: numbers and booleans as they are, anything
    else (pairs such as [2, 4], None, mappings) as its JSON text."""
    if isinstance(value, bool) or (isinstance(value, Number) and math.isfinite(float(value))):
        return value.item() if hasattr(value, "item") else value
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def trial_hparams(trial, searched=None) -> dict:
    """{dotted key: value} of what the search chose for a trial, plus its labels. With ``searched``
    (dotted keys), only those keys, in that order, and the seed, then the labels; a repeated config's
    seed keys and ``repeat`` label are left out (see :func:`session_group`)."""
    config = trial.config or {}
    drawn = [k.replace("/", ".") for k in (trial.evaluated_params or {})]
    if searched is not None:  # read from the config: a repeated config's points are not all "evaluated"
        drawn = [k for k in searched if lookup(config, k) is not MISSING] + [k for k in drawn if k == "seed"]
    out = {}
    for dotted in drawn:
        node = lookup(config, dotted)
        out[dotted] = hparam_value(None if node is MISSING else node)
    for label in LABELS:
        if label in config:
            out[label] = hparam_value(config[label])
    if "repeat" in config:  # the seeds of a config: one session group, so without what tells them apart
        # data.seed too: where it was searched (not --repeat-data) it is the same for the config's seeds
        out = without_seeds(out, repeat_data=True)
    return out


def session_group(trial, hparams: dict, searched=None) -> str:
    """The HParams session group of a trial: for a repeated config (a ``repeat`` label), its name as a
    person knows it (its variant, else its searched values in short: ``lr=1e-4 gp=1e-5``; the W&B group
    and MLflow parent run of its seeds alike), shared by its seeds; otherwise "" (the plugin then makes
    each trial its own group)."""
    if "repeat" not in (trial.config or {}):
        return ""
    return group_name(trial.config, searched if searched is not None else [k for k in hparams if k not in LABELS])


class SweepTensorBoard(TBXLoggerCallback):
    """Tune's TensorBoard logger, stepped by epoch, without Ray's bookkeeping, with HParams."""

    def __init__(self, metrics=(("avg_acc", "max"),), searched=None):
        super().__init__()
        self.searched = list(searched) if searched is not None else None
        from torch.utils.tensorboard import SummaryWriter  # writes TensorBoard's own protos (HParams)

        self._summary_writer_cls = SummaryWriter
        self.metrics = tuple(tuple(m) for m in metrics)
        self._best: dict = {}

    def __getstate__(self):  # pickled with the run config (Tuner.restore): no open writers
        return {"metrics": self.metrics, "searched": self.searched}

    def __setstate__(self, state):
        self.__init__(state["metrics"], state.get("searched"))

    # ------------------------------------------------------------------ Tune's logger hooks
    def log_trial_start(self, trial):
        if trial in self._trial_writer:
            self._trial_writer[trial].close()
        trial.init_local_path()
        writer = self._summary_writer_cls(trial.local_path, flush_secs=30)
        self._trial_writer[trial] = writer
        self._trial_result[trial] = {}
        # best so far: Ray keeps it for a restored trial in its metric analysis
        analysis = trial.metric_analysis or {}
        self._best[trial] = {m: (analysis.get(m) or {}).get(mode) for m, mode in self.metrics}
        self._start_session(trial, writer)

    def log_trial_result(self, iteration, trial, result):
        if trial not in self._trial_writer:
            self.log_trial_start(trial)
        writer = self._trial_writer[trial]
        for row in expand(result):  # each report of the result at its own epoch (report_rows.py)
            self._log_row(writer, trial, row)
        writer.flush()

    def _log_row(self, writer, trial, result: dict) -> None:
        step = int(result.get("epoch") or result.get("training_iteration") or 0)
        for key, value in result.items():
            if key in BOOKKEEPING or isinstance(value, bool) or not isinstance(value, Number):
                continue
            if math.isfinite(float(value)):
                writer.add_scalar(SCALAR_PREFIX + key, float(value), global_step=step)
        best = self._best.setdefault(trial, {})
        for metric, mode in self.metrics:
            value = result.get(metric)
            if not isinstance(value, Number) or isinstance(value, bool) or not math.isfinite(float(value)):
                continue
            held = best.get(metric)
            if held is None or not math.isfinite(held) or (value > held if mode == "max" else value < held):
                best[metric] = float(value)
            writer.add_scalar(f"{HPARAMS_PREFIX}final_{metric}", float(value), global_step=step)
            writer.add_scalar(f"{HPARAMS_PREFIX}best_{metric}", best[metric], global_step=step)

    def log_trial_end(self, trial, failed: bool = False):
        writer = self._trial_writer.pop(trial, None)
        self._trial_result.pop(trial, None)
        self._best.pop(trial, None)
        if writer is None:
            return
        from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

        status = api_pb2.STATUS_FAILURE if failed else api_pb2.STATUS_SUCCESS
        end = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=time.time())
        writer.file_writer.add_summary(_hparams_summary(metadata.SESSION_END_INFO_TAG, session_end_info=end))
        writer.close()

    # ------------------------------------------------------------------ HParams
    def _start_session(self, trial, writer) -> None:
        """The experiment (which hyperparameters and metrics the dashboard shows) and this trial's
        session (its values). Every trial's folder holds both, so any one trial opens on its own."""
        from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

        values = trial_hparams(trial, self.searched)
        infos = [api_pb2.HParamInfo(name=k, type=api_pb2.DATA_TYPE_BOOL if isinstance(v, bool) else
                                    api_pb2.DATA_TYPE_FLOAT64 if isinstance(v, Number) else api_pb2.DATA_TYPE_STRING)
                 for k, v in values.items()]
        metric_infos = [api_pb2.MetricInfo(name=api_pb2.MetricName(tag=f"{HPARAMS_PREFIX}{kind}_{metric}"),
                                           display_name=f"{kind} {metric}")
                        for metric, _ in self.metrics for kind in ("final", "best")]
        experiment = api_pb2.Experiment(hparam_infos=infos, metric_infos=metric_infos)
        start = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time(),
                                                    group_name=session_group(trial, values, self.searched))
        for key, value in values.items():
            field = ("bool_value" if isinstance(value, bool) else "number_value" if isinstance(value, Number)
                     else "string_value")
            setattr(start.hparams[key], field, value)
        writer.file_writer.add_summary(_hparams_summary(metadata.EXPERIMENT_TAG, experiment=experiment))
        writer.file_writer.add_summary(_hparams_summary(metadata.SESSION_START_INFO_TAG, session_start_info=start))
        writer.flush()


def _hparams_summary(tag: str, **data):
    """A summary holding one HParams plugin record (as tensorboard.plugins.hparams.summary_v2 builds
    them; its v1 module needs TensorFlow)."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    summary = summary_pb2.Summary()
    summary.value.add(tag=tag, metadata=metadata.create_summary_metadata(plugin_data_pb2.HParamsPluginData(**data)),
                      tensor=metadata.NULL_TENSOR)
    return summary
