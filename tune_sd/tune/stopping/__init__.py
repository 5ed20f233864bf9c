"""Early stopping: which trials and configs a sweep stops, and why.

What this room owns:

- the rules, without Ray (importable where Ray is not installed):
  ``nonlearner`` (a trial or a config's seeds that stay at chance: the non-learner rule and its
  seed-aware form), ``race`` (configs with repeats raced against the best one), ``seed_pool`` (a
  config's seeds as one curve for ASHA and the median rule), ``config_seeds`` (the bookkeeping of a
  config's seeds that all three share; a config's identity without its seeds is :mod:`tune_sd.seeds`),
  ``replay`` (any of the rules replayed over a finished sweep's reports: ``tune-sd replay``);
- their adapters to Ray Tune: ``nonlearner_stopper`` (a Tune ``Stopper``), ``schedulers`` (the Tune
  schedulers by name), ``records`` (the ``stop_reason`` written into each trial's last result).

Imports: the rules import the standard library, SciPy, :mod:`tune_sd.outcomes`, :mod:`tune_sd.seeds`
and :mod:`tune_sd.tune.choices` only; the adapters may import Ray and :mod:`tune_sd.tune.report_rows`;
the replay reads tables with pandas and imports Ray's schedulers only to replay them. Nothing here
imports the engine.
"""
