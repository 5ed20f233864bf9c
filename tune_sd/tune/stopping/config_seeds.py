"""The bookkeeping of a config's seeds, shared by every rule that judges configs rather than trials
(the seed-aware non-learner rule, the seed pool of ASHA and the median rule, the race), without Ray.

With ``--repeat R`` each config runs R seeds. A rule hears of them one report at a time, in whatever
order their processes report: it must know which trials are seeds of which config, whether every seed
of a config has been heard of (before that, nothing is known of the missing ones, so nothing about
the config is decided), and which seeds have ended (they will say nothing more; a restored one that
reports again runs once more). Without repeats each trial is a config of one seed.
"""

from __future__ import annotations


class ConfigSeeds:
    """``join`` a trial to its config (by its key), ``end`` it when it ended; ``complete`` says whether
    all R seeds of a config have joined, ``running`` which of them have not ended."""

    def __init__(self, repeat: int = 1):
        self.repeat = max(int(repeat or 1), 1)
        self.config_of: dict[str, str] = {}
        self.members: dict[str, list[str]] = {}
        self.ended: set[str] = set()

    def join(self, trial_id: str, key: str) -> bool:
        """Record a trial as a seed of config ``key``: True if it is new (a trial keeps its first config)."""
        trial_id = str(trial_id)
        if trial_id in self.config_of:
            return False
        self.config_of[trial_id] = key
        self.members.setdefault(key, []).append(trial_id)
        return True

    def end(self, trial_id: str) -> None:
        """The trial ended (completed, stopped or failed): its reports so far are all it will give."""
        self.ended.add(str(trial_id))

    def reporting(self, trial_id: str) -> None:
        """The trial reports: a trial restored from its checkpoint after it ended runs again."""
        self.ended.discard(str(trial_id))

    def complete(self, key: str) -> bool:
        """Every seed of the config has joined (a config of one trial: always)."""
        members = self.members.get(key, [])
        return len(members) >= self.repeat or (len(members) == 1 and members[0] == key)

    def running(self, key: str) -> list[str]:
        """The config's seeds that have not ended."""
        return [m for m in self.members.get(key, []) if m not in self.ended]
