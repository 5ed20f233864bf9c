"""A sweep's stopping in words, for its header, ``--dry-run`` and the replay: the scheduler and the
stopper with the settings a trial of the sweep's planned epochs is judged by (the grace, the window,
the rungs). Without Ray: a plan is described before Ray starts."""

from __future__ import annotations


def uses_nonlearner(name: str) -> bool:
    """Whether a scheduler name runs the non-learner stopper (alone or beside asha/median)."""
    return "nonlearner" in str(name)


def describe_scheduler(settings: dict) -> str:
    """The scheduler and stopper a sweep runs, in words (what Ray's table gets wrong for the stopper)."""
    from tune_sd.tune.choices import default_grace_period
    from tune_sd.tune.stopping.nonlearner import nonlearner_settings

    name = str(settings.get("scheduler", "asha"))
    base = name.replace("+nonlearner", "").replace("nonlearner", "fifo")
    epochs = int(settings["epochs"])
    grace = settings.get("grace_period") or default_grace_period(epochs, int(settings["report_every"]))
    grace = min(grace, epochs)
    if base == "asha":
        what = f"ASHA (grace {grace} epochs, reduction factor {float(settings.get('reduction_factor') or 3):g})"
    elif base == "median":
        what = f"the median stopping rule (grace {grace} epochs)"
    elif base == "race":
        from tune_sd.tune.stopping.race import race_plan

        rungs, alpha = race_plan(epochs=epochs, report_every=int(settings["report_every"]),
                                 grace_period=settings.get("grace_period"),
                                 reduction_factor=settings.get("reduction_factor"),
                                 repeat=int(settings.get("repeat") or 1), race_alpha=settings.get("race_alpha"))
        what = (f"a race of the configs' {settings.get('repeat')} seeds at epochs {', '.join(map(str, rungs))} "
                f"(rank test against the best config, alpha {alpha:g} over the rungs; a config still rising "
                f"since the last look, half its seeds or more, is judged at the next)")
    else:
        what = "FIFO (no rank-based early stopping)"
    if base in ("asha", "median") and int(settings.get("repeat") or 1) > 1:
        what += f" over configs (the median of each config's {settings.get('repeat')} seeds; its seeds stop together)"
    if base in ("asha", "median", "race") and settings.get("metric", "avg_acc") == "avg_acc":
        # the chance guard (chance_guard.py): the non-learner rule's settings decide about curves at chance
        nl = nonlearner_settings(settings).at(epochs)
        what += (f"; a {'config' if int(settings.get('repeat') or 1) > 1 else 'trial'} at chance stops only once "
                 f"the non-learner rule calls it a non-learner (grace {nl.grace}, window {nl.window})")
    if uses_nonlearner(name):
        nl = nonlearner_settings(settings)
        what += f" + the non-learner stopper ({nl.describe(epochs)}"
        if int(settings.get("repeat") or 1) > 1:
            what += "; each config's seeds judged together"
        # the stopper first looks at a trial after its grace period
        what += f"; it stops none: trials end at epoch {epochs})" if nl.at(epochs).grace >= epochs else ")"
    return what
