"""The run config: one validated, typed tree whose keys mirror the notebook's hyperparameter dict.

A dict from the seed notebook (``arch``, ``disc``, ``ext``, ``ext_type``, ``ext_size``, ``epochs``,
``runtime``, ``batch_size``) loads as it is; our own sections (``generator``, ``library``, ``data``)
and top-level keys (``seed``, ``avg_hor`` ...) fill in the rest. Every leaf has a default (the Step 15
setting), a check, and a line of help. An unknown key or a bad value raises :class:`ConfigError`
naming the dotted key and what is allowed.

Configs are plain data: YAML is read with PyYAML's safe loader, within bounds (yaml_limits.py), and nothing
in it is ever executed.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from tune_sd.engine import limits
from tune_sd.errors import ConfigError

from . import yaml_limits
from .yaml_limits import excerpt

# --------------------------------------------------------------------------------------------
# checks: each takes (key, value) and returns the normalised value or raises ConfigError


def _fail(key: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{key}: {limits.short(value)} is not allowed (allowed: {allowed})")


def _as_number(key, value, allowed):
    if isinstance(value, bool):
        _fail(key, value, allowed)
    if isinstance(value, str):  # YAML 1.1 reads "1e-5" as a string
        try:
            value = float(value)
        except ValueError:
            _fail(key, value, allowed)
    if not isinstance(value, (int, float)):
        _fail(key, value, allowed)
    return value


def integer(lo: int | None = None, hi: int | None = None, optional: bool = False) -> Callable:
    """An integer in [lo, hi]; every integer key is at most ``limits.MAX_INT`` (a 64-bit integer)."""
    bounds = "an integer" + (f" >= {lo}" if lo is not None else "") + (f" <= {hi}" if hi is not None else "")
    short = bounds + (" or null" if optional else "")  # what a message says where the value is not too long
    allowed = short
    if hi is None or hi > limits.MAX_INT:
        hi, allowed = limits.MAX_INT, bounds + " that fits in 64 bits" + (" or null" if optional else "")

    def check(key, value):
        if value is None and optional:
            return None
        value = _as_number(key, value, short)
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            _fail(key, value, short)  # inf, nan or a fraction
        value = int(value)
        if value > hi:
            _fail(key, value, allowed)
        if lo is not None and value < lo:
            _fail(key, value, short)
        return value

    return check


def real(lo: float | None = None, hi: float | None = None, lo_open=False, hi_open=False, optional=False) -> Callable:
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo:g}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi:g}")
    allowed = "a number" + (" " + " and ".join(parts) if parts else "") + (" or null" if optional else "")

    def check(key, value):
        if value is None and optional:
            return None
        try:
            value = float(_as_number(key, value, allowed))
        except OverflowError:  # an integer past the largest float
            _fail(key, value, allowed)
        if not math.isfinite(value):
            _fail(key, value, allowed)
        if lo is not None and (value < lo or (lo_open and value == lo)):
            _fail(key, value, allowed)
        if hi is not None and (value > hi or (hi_open and value == hi)):
            _fail(key, value, allowed)
        return value

    return check


def choice(*options: str, optional: bool = False) -> Callable:
    allowed = ", ".join(options) + (" or null" if optional else "")

    def check(key, value):
        if value is None and optional:
            return None
        if not isinstance(value, str) or value.lower() not in options:
            _fail(key, value, allowed)
        return value.lower()

    return check


def boolean(key, value):
    if not isinstance(value, bool):
        _fail(key, value, "true or false")
    return value


def no_opt_in(key, value):
    """A switch that only the command line may turn on (configs and spaces travel between people): false."""
    if value is True:
        raise ConfigError(f"{key}: true is refused here: a config or space cannot switch on unpickling (it runs "
                          "code from the file); for a split file you trust, give --allow-pickle to tune-sd train")
    return boolean(key, value)


def text(optional: bool = False) -> Callable:
    def check(key, value):
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value:
            _fail(key, value, "a non-empty string" + (" or null" if optional else ""))
        return value

    return check


def int_or_pair(lo: int, hi: int | None = None) -> Callable:
    """An int, or a pair of ints (the notebook's tuples, e.g. ``(2, 0)``, are YAML lists)."""
    one = integer(lo, hi)
    allowed = f"an integer >= {lo}" + (f" and <= {hi}" if hi is not None else "") + " or a pair of them, e.g. [2, 4]"

    def check(key, value):
        if isinstance(value, (list, tuple)):
            if len(value) != 2:
                _fail(key, value, allowed)
            return [one(f"{key}[{i}]", v) for i, v in enumerate(value)]
        if value is None:
            _fail(key, value, allowed)
        return one(key, value)

    return check


def list_of(item: Callable, length: int | None = None, optional=False, unique=False, allowed="") -> Callable:
    def check(key, value):
        if value is None and optional:
            return None
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and length is None:
            value = [value]  # a single item where a list is expected: `ext: grad`
        if not isinstance(value, (list, tuple)) or (length is not None and len(value) != length):
            _fail(key, value, allowed or (f"a list of {length}" if length else "a list"))
        out = [item(f"{key}[{i}]", v) for i, v in enumerate(value)]
        if unique and len(set(map(str, out))) != len(out):
            _fail(key, value, allowed + " (without repeats)")
        return out

    return check


def ext_kind(key, value):
    if isinstance(value, str) and value.lower() == "stack":
        raise ConfigError(f"{key}: 'stack' is a way to feed extra information, not a kind of it "
                          "(allowed: input, grad); set ext_type: stack instead")
    return choice("input", "grad")(key, value)


def hid_kwargs(key, value):
    # the notebook's network options (alpha, norm, prune); kept so that its dicts load as-is
    if value is None:
        return None
    if not isinstance(value, dict):
        _fail(key, value, "a mapping with keys alpha, norm, prune")
    for k, v in value.items():
        if k not in ("alpha", "norm", "prune"):
            raise ConfigError(f"{key}.{k}: unknown key (allowed: alpha, norm, prune)")
        if v is not None and not isinstance(v, (int, float, str, bool)):
            _fail(f"{key}.{k}", v, "a number, a string or null")
    return dict(value)


def null_only(why: str) -> Callable:
    """A key of the notebook's dict that it only ever sets to null: null loads, anything else is refused
    (rather than accepted and ignored)."""

    def check(key, value):
        if value is not None:
            raise ConfigError(f"{key}: {value!r} is not supported (allowed: null); {why}")
        return None

    return check


def splits(key, value):
    return list_of(integer(0), length=3, allowed="three sizes [train, val, test]")(key, value)


# --------------------------------------------------------------------------------------------
# the schema


@dataclass(frozen=True)
class Field:
    default: Any
    check: Callable
    help: str


SCHEMA: dict[str, Field] = {
    # the generator network (only its first part, inputs -> latent, is used by Step 15)
    "arch.in_size": Field(None, integer(1, optional=True), "input features of the generator (null: from data.features)"),
    "arch.out_size": Field(1, integer(1), "outputs of the network's second part (unused by the SD study)"),
    "arch.hid_num": Field([2, 0], int_or_pair(0, limits.MAX_LAYERS),
                         f"hidden layers (inputs->latent, latent->output; at most {limits.MAX_LAYERS})"),
    "arch.hid_size": Field(32, int_or_pair(1), "hidden units per layer (int or pair)"),
    "arch.hid_type": Field(["MLP", "MLP"], list_of(choice("mlp", "dsn"), 2, allowed="a pair of MLP/DSN"),
                           "network types of the two parts"),
    "arch.hid_kwargs": Field(None, hid_kwargs, "the notebook's network options (unused)"),
    "arch.lat_size": Field(5, integer(1, 4096), "latent units = fake functions per epoch"),
    # the critic
    "disc.hid_num": Field(6, int_or_pair(0, limits.MAX_LAYERS),
                         f"hidden layers of the critic ([embedding, main] with ext_type embed; at most {limits.MAX_LAYERS})"),
    "disc.hid_size": Field(128, int_or_pair(1), "hidden units of the critic ([embedding, main] with ext_type embed)"),
    "disc.emb_size": Field(None, null_only("the embedding's input is each point's value and its ext numbers (ext, "
                                           "ext_size); its layers are the first of disc.hid_num and disc.hid_size"),
                           "kept so that the notebook's dicts load (it only sets null); other values are refused"),
    "disc.lr": Field(1e-4, real(0, 10, lo_open=True), "Adam learning rate"),
    "disc.wd": Field(1e-4, real(0, 10), "Adam weight decay"),
    "disc.betas": Field([0.9, 0.999], list_of(real(0, 1, hi_open=True), 2, allowed="a pair in [0, 1)"), "Adam betas"),
    "disc.iters": Field(5, integer(1, 10000), "critic optimizer steps per epoch"),
    "disc.gp": Field(1e-5, real(0, 1e6), "gradient penalty weight (0: off)"),
    "disc.loss_fun": Field("wasserstein", choice("wasserstein", "bce"), "critic loss"),
    # extra information for the critic
    "ext": Field(None, list_of(ext_kind, optional=True, unique=True, allowed="a list of input, grad"),
                 "extra information per point: [input], [grad] or [input, grad]"),
    "ext_type": Field("embed", choice("embed", "stack"), "how extra information is fed: embed or stack"),
    "ext_size": Field(None, integer(1, optional=True), "extra numbers per point (null: derived from ext)"),
    # the run
    "epochs": Field(1000, integer(1), "epochs to train"),
    "runtime": Field(None, real(0, lo_open=True, optional=True), "stop after this many seconds (null: no limit)"),
    "batch_size": Field(None, integer(1, optional=True), "points per function (the notebook's; null: all train points)"),
    "seed": Field(0, integer(0, 2**63 - 1), "seed of every random generator of the run"),
    "avg_hor": Field(500, integer(1), "moving-average horizon of avg_acc (epochs)"),
    "report_every": Field(25, integer(1), "epochs per report (Tune iteration; flushes of tune-sd train)"),
    # checkpoints and figures are paced by the clock (a long run's number of them, and its disk, do not
    # grow with its epochs); a count of reports, where given, takes the clock's place
    "checkpoint_every": Field(None, integer(1, optional=True),
                              "reports per checkpoint (null: one every checkpoint_minutes, and at the end)"),
    "checkpoint_minutes": Field(5.0, real(0, 1e6, lo_open=True),
                                "minutes between checkpoints where checkpoint_every is null"),
    "figure_every": Field(None, integer(0, optional=True),
                          "reports per TensorBoard figure of real vs fake samples (0: none; null: one at the "
                          "first report, then one every figure_minutes, and at the end)"),
    "figure_minutes": Field(15.0, real(0, 1e6, lo_open=True),
                            "minutes between TensorBoard figures where figure_every is null"),
    # fake functions
    "generator.type": Field(None, choice("mlp", "dsn", "gp", optional=True), "mlp, dsn or gp (null: arch.hid_type[0])"),
    "generator.length_scale": Field(1.0, real(0, lo_open=True), "gp: RBF length scale"),
    "generator.variance": Field(0.01, real(0, lo_open=True), "gp: prior variance"),
    "generator.jitter": Field(1e-6, real(0, 1), "gp: relative jitter on the covariance diagonal"),
    # real functions
    "library.path": Field("F10_v1", text(), "library file, or the name of one in funs/"),
    "library.shuffle": Field(True, boolean, "draw functions at random (false: the first ones, in order)"),
    "library.iter_sample": Field(False, boolean, "a fresh real batch for every critic step"),
    # input points
    "data.path": Field(None, text(optional=True), ".npy/.npz/.parquet/.gz file or folder (null: the default data)"),
    "data.var": Field("X10", text(), "variable name of the inputs in library files"),
    "data.features": Field([0], list_of(integer(0), unique=True, allowed="a list of column indices"),
                           "input columns used"),
    "data.split": Field("train", choice("train", "val", "test"), "which split gives the points"),
    "data.n_points": Field(1000, integer(1), "default data: number of points"),
    "data.n_features": Field(2, integer(1), "default data: number of features"),
    "data.split_sizes": Field([700, 200, 100], splits, "default data: train/val/test sizes"),
    "data.seed": Field(0, integer(0), "default data: seed"),
    "data.split_path": Field(None, text(optional=True), "split given as plain index files (folder, .npz, .json, .yaml)"),
    "data.allow_pickle": Field(False, no_opt_in, "always false: a pickled split file is read only with the command "
                                                 "line's --allow-pickle (unpickling runs code from the file)"),
    "data.key": Field(None, text(optional=True), "array name inside an .npz file"),
    # what a run is: the SD study (a critic learns library vs generator functions), or Step 7, a
    # network inputs -> latent -> output learning target data, its latents pushed by a trained critic
    "task": Field("sd", choice("sd", "regularize"), "sd: train a critic; regularize: train a network with one"),
    "sd": Field(0.0, real(0, 1e12), "regularize: weight of the critic term, sd x mean(-critic(latents))"),
    "sigmoid": Field(False, boolean, "regularize: the critic's score through a sigmoid"),
    "lr": Field(1e-3, real(0, 10, lo_open=True), "regularize: the network's Adam learning rate"),
    "wd": Field(0.0, real(0, 10), "regularize: the network's Adam weight decay"),
    "critic.path": Field(None, text(optional=True), "regularize: the trained critic, a checkpoint (study.pt or its folder; --critic-from)"),
    "critic.iters": Field(0, integer(0, 10000), "regularize: critic steps per epoch (0: the critic stays fixed)"),
    "target.path": Field(None, text(optional=True), "regularize: target data from `tune-sd data make` (null: built from target.*)"),
    "target.latents": Field(None, list_of(text(), optional=True, allowed="a list of expressions"),
                            "regularize: the true latents as expressions of the inputs (null: the seed's three quadratics)"),
    "target.library": Field(None, text(optional=True), "regularize: draw target.k latents from this library instead"),
    "target.k": Field(3, integer(1, 1000), "regularize: latents drawn from target.library"),
    "target.f": Field("g0*g1 + np.sin(g2)", text(optional=True), "regularize: the target as an expression of g0, g1, ... (null or sum: their sum)"),
    "target.seed": Field(0, integer(0), "regularize: seed of the coefficients drawn from target.library"),
}

SECTIONS = sorted({k.split(".")[0] for k in SCHEMA if "." in k})

# --------------------------------------------------------------------------------------------
# what a resumed run may change (``train --resume DIR --set KEY=VALUE``, ``RunLoop.from_state``)

# Settings a run reads afresh every epoch, or that are written into the optimizer's param_groups
# after its saved state is loaded: none of them changes a tensor's shape or the functions the run
# learns from, so from the next epoch on the run uses the new value for real. Per task, because a
# key the task does not read (disc.* in a regularisation run, sd in an SD study) would be recorded
# without being used.
CADENCE = ("epochs", "runtime", "report_every", "checkpoint_every", "checkpoint_minutes", "figure_every",
           "figure_minutes")
RESUMABLE = {
    "sd": frozenset(CADENCE + ("disc.lr", "disc.wd", "disc.betas", "disc.iters", "disc.gp", "disc.loss_fun",
                               "avg_hor")),
    "regularize": frozenset(CADENCE + ("lr", "wd", "sd", "sigmoid", "critic.iters")),
}
_SHAPE = "it sets the shape of the networks whose weights the checkpoint holds"
_DATA = "it changes the data the run learns from"
REFUSED = [  # (key or section prefix, why a resumed run cannot apply it); the first match counts
    ("arch.", _SHAPE), ("disc.hid_num", _SHAPE), ("disc.hid_size", _SHAPE), ("disc.emb_size", _SHAPE),
    ("ext", _SHAPE), ("ext_type", _SHAPE), ("ext_size", _SHAPE),
    ("data.", _DATA + " (the input points)"), ("batch_size", _DATA + " (the input points)"),
    ("library.", _DATA + " (the real functions)"), ("target.", _DATA + " (the target)"),
    ("generator.", _DATA + " (the fake functions)"),
    ("seed", "the random state comes from the checkpoint, so a new seed would not be used"),
    ("task", "it changes what the run is"),
    ("critic.path", "the run's critic is the one it started with"),
]


def _refusal(key: str, task: str) -> str:
    for prefix, why in REFUSED:
        if key == prefix or (prefix.endswith(".") and key.startswith(prefix)):
            return why
    return f"a {task} run does not use it"


def resume_changes(old: "Config", new: "Config", epoch: int) -> list[dict]:
    """The keys ``new`` changes from ``old``, as records ``{epoch, key, from, to}`` (the new value
    holds from ``epoch`` on). A change a resumed run cannot apply raises :class:`ConfigError` that
    names every such key and says why."""
    before, after = old.flat(), new.flat()
    allowed = RESUMABLE[old.task]
    changes, refused = [], []
    for key in SCHEMA:
        if before[key] == after[key]:
            continue
        if key not in allowed or (key == "critic.iters" and 0 in (before[key], after[key])):
            why = ("it switches the critic between fixed and trained" if key == "critic.iters"
                   else _refusal(key, old.task))
            refused.append(f"{key}: {before[key]!r} -> {after[key]!r} ({why})")
        else:
            changes.append({"epoch": epoch, "key": key, "from": before[key], "to": after[key]})
    if refused:
        raise ConfigError("a resumed run cannot change " + "; ".join(refused) +
                          ". Start a new run instead (keys a resumed run applies: " + ", ".join(sorted(allowed)) + ")")
    return changes


def format_changes(changes: list[dict]) -> list[str]:
    """One line per change: ``from epoch 31: disc.lr 0.0001 -> 0.001``."""
    return [f"from epoch {c['epoch']}: {c['key']} {c['from']!r} -> {c['to']!r}" for c in changes]


def defaults() -> dict:
    """The Step 15 defaults as a nested dict."""
    return unflatten({k: copy.deepcopy(f.default) for k, f in SCHEMA.items()})


def flatten(tree: dict, prefix: str = "") -> dict:
    """Nested dict -> {dotted key: leaf}. Mappings under known leaf keys (hid_kwargs) stay leaves."""
    out = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and key not in SCHEMA:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def unflatten(flat: dict) -> dict:
    out: dict = {}
    for key, v in flat.items():
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return out


class Section(dict):
    """A nested dict with attribute access: ``cfg.disc.lr``."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _sectioned(tree: dict) -> Section:
    return Section({k: _sectioned(v) if isinstance(v, dict) and k in SECTIONS else v for k, v in tree.items()})


def _known_keys(prefix: str) -> list[str]:
    n = len(prefix)
    return sorted({k[n:].split(".")[0] for k in SCHEMA if k.startswith(prefix)})


class Config(Section):
    """A validated run config. Build with :meth:`from_dict`, :func:`load_config` or :func:`resolve`."""

    @classmethod
    def from_dict(cls, tree: dict | None, where: str = "") -> "Config":
        tree = tree or {}
        if not isinstance(tree, dict):
            raise ConfigError(f"{where or 'config'}: expected a mapping of keys, got {type(tree).__name__}")
        merged = {k: copy.deepcopy(f.default) for k, f in SCHEMA.items()}
        for key, value in flatten(tree).items():
            if key not in SCHEMA:
                prefix = ""
                for part in key.split(".")[:-1]:  # the deepest known section above the key
                    if any(k.startswith(prefix + part + ".") for k in SCHEMA):
                        prefix += part + "."
                    else:
                        break
                allowed = ", ".join(_known_keys(prefix))
                place = f" in {prefix[:-1]}" if prefix else ""
                raise ConfigError(f"{where}{key}: unknown key{place} (allowed: {allowed})")
            merged[key] = value
        for key, value in merged.items():  # defaults pass the same checks, so values are normalised alike
            merged[key] = SCHEMA[key].check(where + key, value)
        cfg = cls(_sectioned(unflatten(merged)))
        cfg._cross_check(where)
        return cfg

    @classmethod
    def from_saved(cls, tree: dict, where: str = "") -> "Config":
        """The config a checkpoint keeps (our own file): as :meth:`from_dict`, less ``data.allow_pickle``,
        which runs saved before it became the command line's ``--allow-pickle`` may hold as true (the
        resumed run reads a pickled split only if that command line asks again)."""
        flat = {k: v for k, v in flatten(tree or {}).items() if k != "data.allow_pickle"}
        return cls.from_dict(unflatten(flat), where=where)

    def _cross_check(self, where: str) -> None:
        for name in ("hid_num", "hid_size"):
            if isinstance(self.disc[name], list) and not (self.ext and self.ext_type == "embed"):
                raise ConfigError(f"{where}disc.{name}: a pair {self.disc[name]} needs ext with ext_type: embed "
                                  "(the first number is the embedding's); give one integer")
        n_feat = len(self.data.features)
        if self.arch.in_size is not None and self.arch.in_size != n_feat:
            raise ConfigError(f"{where}arch.in_size: {self.arch.in_size} but data.features {self.data.features} "
                              f"selects {n_feat} column(s); set arch.in_size: {n_feat} or null")
        if self.ext_size is not None and self.ext_size != self.derived_ext_size:
            raise ConfigError(f"{where}ext_size: {self.ext_size} but ext {self.ext} with {n_feat} input feature(s) "
                              f"gives {self.derived_ext_size}; set ext_size: {self.derived_ext_size} or null")
        if self.ext_size is not None and not self.ext:
            raise ConfigError(f"{where}ext_size: {self.ext_size} given without ext")
        limits.check_config(self, where)

    # ---- derived values
    @property
    def derived_ext_size(self) -> int:
        """Extra numbers per point: d for input, d for grad (d = number of input features)."""
        return len(self.ext or []) * len(self.data.features)

    @property
    def generator_type(self) -> str:
        return self.generator.type or self.arch.hid_type[0]

    def to_dict(self) -> dict:
        """Plain nested dicts and lists, safe for YAML and Tune."""
        return copy.deepcopy(_plain(self))

    def flat(self) -> dict:
        return flatten(self.to_dict())

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def replace(self, **dotted) -> "Config":
        """A copy with dotted overrides, e.g. ``cfg.replace(**{"disc.lr": 1e-3})``."""
        tree = self.to_dict()
        return Config.from_dict(merge(tree, unflatten(dotted)))


def _plain(node):
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_plain(v) for v in node]
    return node


def merge(base: dict, over: dict) -> dict:
    """Deep merge of nested dicts; ``over`` wins. Leaf mappings (hid_kwargs) are replaced whole."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_override(item: str) -> tuple[str, Any]:
    """``"disc.lr=1e-5"`` -> ("disc.lr", 1e-5). Values are YAML scalars or flow lists: ``[2,4]``, read
    within the bounds of every YAML the tool reads (:mod:`tune_sd.engine.yaml_limits`)."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {excerpt(item)}: expected KEY=VALUE, e.g. --set disc.lr=1e-5")
    if len(key) > 200:
        raise ConfigError(f"--set {excerpt(item)}: not a config key (a key is a few dotted names)")
    value = yaml_limits.parse(raw, f"--set {key}") if raw.strip() else None
    return key, value


def load_yaml(path: str | Path, label: str | None = None) -> tuple[str, object]:
    """(text, data) of a YAML file read within the bounds of :mod:`tune_sd.engine.yaml_limits` (size,
    values, nesting; checked before anything is built); errors name the file (as ``label``), line and
    column."""
    return yaml_limits.read(path, label)


def read_yaml(path: str | Path) -> dict:
    """A YAML file holding a mapping of config keys (empty file: no keys)."""
    _, tree = load_yaml(path)
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(tree).__name__}")
    return tree


def resolve(path: str | Path | None = None, overrides: list[str] | tuple = (), **dotted) -> Config:
    """The config of one run: defaults <- YAML file <- ``--set`` overrides <- keyword overrides."""
    tree = read_yaml(path) if path else {}
    where = f"{path}: " if path else ""
    Config.from_dict(tree, where=where)  # file errors are reported against the file
    extra = dict(parse_override(o) for o in overrides)
    extra.update(dotted)
    for key, value in extra.items():
        tree = merge(tree, unflatten({key: value}))
    return Config.from_dict(tree)


def load_config(path: str | Path) -> Config:
    return resolve(path)
