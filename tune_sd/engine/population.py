"""A population: several SD studies of one shape, trained side by side.

Each member is a full study (its config, seed, random streams, history); ``step`` advances any
subset of members by one epoch. A member's state is a solo :class:`Study` checkpoint, both ways.
"""

from __future__ import annotations

import torch

from tune_sd.errors import ConfigError, StudyError

from .config import Config
from .study import Study

# the data keys that choose the input points: members of one population see the same points
_DATA_KEYS = ("path", "var", "n_points", "n_features", "split_sizes", "seed", "split_path", "key", "split",
              "features", "allow_pickle")


def _frozen(v):
    return tuple(_frozen(x) for x in v) if isinstance(v, (list, tuple)) else v


def shape_key(cfg: Config | dict, device="cpu") -> tuple:
    """The config values that change tensor shapes (critic depth and widths, extra information, the
    points) plus dtype and device: trials with equal keys can share one population."""
    cfg = cfg if isinstance(cfg, Config) else Config.from_dict(cfg)
    d = cfg.disc
    return (("disc.hid_num", _frozen(d.hid_num)), ("disc.hid_size", _frozen(d.hid_size)),
            ("ext", _frozen(sorted(cfg.ext or []))), ("ext_type", cfg.ext_type if cfg.ext else None),
            ("ext_size", cfg.derived_ext_size),
            *((f"data.{k}", _frozen(cfg.data[k])) for k in _DATA_KEYS),
            ("dtype", "float32"), ("device", str(torch.device(device))))


class Population:
    """Members of one shape key, each reproducing the solo :class:`Study` with its config and seed."""

    def __init__(self, device="cpu"):
        self.device = torch.device(device)
        self._studies: dict[str, Study] = {}
        self._errors: dict[str, str] = {}
        self.key: tuple | None = None

    # ------------------------------------------------------------------ membership
    def add(self, member_id: str, cfg: Config | dict, state: dict | None = None) -> None:
        """A member joins, fresh (as ``Study(cfg)`` starts) or from ``state`` (a ``Study.state_dict()``)."""
        cfg = cfg if isinstance(cfg, Config) else Config.from_dict(cfg)
        if member_id in self._studies:
            raise ConfigError(f"population: member {member_id!r} is already in it")
        key = shape_key(cfg, self.device)
        if self.key is not None and key != self.key:
            diff = ", ".join(f"{a[0]} {a[1]!r} (population: {b[1]!r})" for a, b in zip(key, self.key) if a != b)
            raise ConfigError(f"population: member {member_id!r} has another shape: {diff}")
        study = Study(cfg, device=self.device)
        if state is not None:
            study.load_state_dict(state)
        self._studies[member_id] = study
        self.key = key

    def remove(self, member_id: str) -> dict:
        """The member leaves; returns its state (``Study.state_dict()`` format)."""
        state = self.state_dict(member_id)
        del self._studies[member_id]
        self._errors.pop(member_id, None)
        if not self._studies:
            self.key = None
        return state

    def _member(self, member_id: str) -> Study:
        try:
            return self._studies[member_id]
        except KeyError:
            raise StudyError(f"population: no member {member_id!r}") from None

    @property
    def members(self) -> list[str]:
        return list(self._studies)

    def __len__(self) -> int:
        return len(self._studies)

    # ------------------------------------------------------------------ training
    def step(self, member_ids: list[str] | None = None) -> dict[str, dict]:
        """One epoch for each listed member (default: every member not done); their metrics, as
        ``Study.step()`` returns them, or ``{"error": message}`` for a member whose loss became non-finite."""
        ids = [m for m in self._studies if not self.done(m)] if member_ids is None else list(member_ids)
        out = {}
        for m in ids:
            study = self._member(m)
            if m in self._errors:
                out[m] = {"error": self._errors[m]}
                continue
            try:
                out[m] = study.step()
            except StudyError as e:
                self._errors[m] = str(e)
                out[m] = {"error": str(e)}
        return out

    # ------------------------------------------------------------------ per member
    def state_dict(self, member_id: str) -> dict:
        return self._member(member_id).state_dict()

    def epoch(self, member_id: str) -> int:
        return self._member(member_id).epoch

    def done(self, member_id: str) -> bool:
        return self._member(member_id).done

    def history(self, member_id: str) -> dict[str, list]:
        return self._member(member_id).history

    def study(self, member_id: str) -> Study:
        """A solo study rebuilt from the member's state (for figures and the like)."""
        return Study.from_state(self.state_dict(member_id), device=self.device)


def pack_size(cfg: Config | dict, device="cpu") -> int:
    """How many members of this shape to pack in one population where it pays (1: do not pack)."""
    cfg = cfg if isinstance(cfg, Config) else Config.from_dict(cfg)
    if torch.device(device).type == "cuda":
        return 256
    return 16 if critic_size(cfg) <= SMALL_CRITIC else 1


# a CPU core is compute-bound above about this many critic weights (the 6 x 128 critic is), so
# stacking more of them gains nothing there
SMALL_CRITIC = 100_000


def critic_size(cfg: Config) -> int:
    """Weights of the critic of ``cfg`` (on the default data's point count when the data is not read)."""
    from .critic import _pair

    n = cfg.data.split_sizes[("train", "val", "test").index(cfg.data.split)] if cfg.data.path is None else 700
    e = cfg.derived_ext_size
    if e and cfg.ext_type == "embed":
        (en, mn), (es, ms) = _pair(cfg.disc.hid_num), _pair(cfg.disc.hid_size)
        return _mlp_size(1 + e, en, es) + _mlp_size(n, mn, ms)
    return _mlp_size(n * (1 + e), cfg.disc.hid_num, cfg.disc.hid_size)


def _mlp_size(i, num, size):
    sizes = [i] + [size] * num + [1]
    return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
