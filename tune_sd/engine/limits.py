"""Bounds on the numbers a user gives, checked before anything is allocated or started.

Two kinds: documented limits (``MAX_INT``, ``MAX_LAYERS``, ``MAX_TRIALS``), and memory estimates
(:func:`check_memory`) held against the machine's memory. Each refusal is a :class:`ConfigError`
of one line naming the key, the value and why.
"""

from __future__ import annotations

import os

from tune_sd.errors import ConfigError

MAX_INT = 2**63 - 1  # every integer key fits a 64-bit integer (torch and numpy store them so)
MAX_LAYERS = 1000  # hidden layers of one network part: far past any studied critic, and built in seconds
MAX_TRIALS = 1_000_000  # trials of one sweep (samples x repeats x grid points): Tune keeps each in memory
FLOAT32 = 4
FLOAT64 = 8
INT64 = 8
TRAIN_COPIES = 4  # a trained parameter's bytes: its value, its gradient and Adam's two moments


def machine_memory() -> int:
    """Bytes of memory of this machine (0 where it cannot be told)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def check_memory(key: str, value, need: float, what: str, memory: int | None = None) -> None:
    """Refuse ``key: value`` where ``what`` would need ``need`` bytes, more than the machine has."""
    memory = machine_memory() if memory is None else memory
    if memory and need > memory:
        raise ConfigError(f"{key}: {short(value)} is too large: {what} would need about {human_bytes(need)}, "
                          f"more than this machine's {human_bytes(memory)}")


def short(value) -> str:
    """``repr(value)``, cut short for a number of many digits."""
    text = repr(value)
    if len(text) > 40:
        return f"{text[:12]}...{text[-4:]} ({len(text)} characters)"
    return text


def mlp_params(in_size: int, hid_num: int, hid_size: int, out_size: int = 1) -> int:
    """Parameters of :func:`tune_sd.engine.critic.mlp` (weights and biases)."""
    sizes = [in_size] + [hid_size] * hid_num + [out_size]
    return sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))


def _pair(v) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (list, tuple)) else (int(v), int(v))


def check_config(cfg, where: str = "") -> None:
    """The memory a run of ``cfg`` would need for its points and networks, against the machine's: the
    default data (``data.n_points`` x ``data.n_features``), the critic (``disc.*``; its input is a
    function's values on the training points) and the generator (``arch.*``), each with its gradient
    and Adam's moments."""
    if cfg.data.path is None:
        # float32 points, and the int64 permutation that splits them (drawn, converted, and cut)
        need = cfg.data.n_points * (cfg.data.n_features * FLOAT32 + 3 * INT64)
        big = "data.n_points" if cfg.data.n_points >= cfg.data.n_features else "data.n_features"
        check_memory(where + big, cfg.data[big.split(".")[1]], need,
                     f"{cfg.data.n_points} x {cfg.data.n_features} input points")
        split = {"train": 0, "val": 1, "test": 2}[cfg.data.split]
        n_points = min(cfg.data.split_sizes[split], cfg.data.n_points)
        points_key = "data.split_sizes"
    else:
        n_points = 1  # the points' count is known once the file is read (its header is checked there)
        points_key = "data.path"
    ext = cfg.derived_ext_size
    (emb_num, main_num), (emb_size, main_size) = _pair(cfg.disc.hid_num), _pair(cfg.disc.hid_size)
    if ext and cfg.ext_type == "embed":
        critic = mlp_params(1 + ext, emb_num, emb_size) + mlp_params(n_points, main_num, main_size)
    else:
        critic = mlp_params(n_points * (1 + ext), main_num, main_size)
    in_size = n_points if ext and cfg.ext_type == "embed" else n_points * (1 + ext)
    if in_size > main_size * max(main_num, 1):  # the first layer, a weight per input point, dominates
        key, value = points_key, cfg.data.split_sizes if points_key == "data.split_sizes" else cfg.data.path
    else:
        key = "disc.hid_size" if main_size >= main_num else "disc.hid_num"
        value = cfg.disc[key.split(".")[1]]
    check_memory(where + key, value, critic * FLOAT32 * TRAIN_COPIES, f"a critic of {critic:,} parameters")
    (lat_num, out_num), (lat_hid, out_hid) = _pair(cfg.arch.hid_num), _pair(cfg.arch.hid_size)
    gen = (mlp_params(len(cfg.data.features), lat_num, lat_hid, cfg.arch.lat_size)
           + mlp_params(cfg.arch.lat_size, out_num, out_hid, cfg.arch.out_size))
    key = "arch.hid_size" if max(lat_hid, out_hid) >= max(lat_num, out_num) else "arch.hid_num"
    check_memory(where + key, cfg.arch[key.split(".")[1]], gen * FLOAT32 * TRAIN_COPIES,
                 f"a generator of {gen:,} parameters")


def check_device(device: str, flag: str = "--device") -> str:
    """``device`` if torch can run on it here (cpu, cuda, cuda:N of the GPUs this machine has, mps),
    else a :class:`ConfigError` naming the flag and what this machine offers."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    offered = "cpu" + (f", cuda or cuda:N with N < {gpus}" if gpus else " (no CUDA GPU here)")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"{flag}: {short(device)} is not a device (allowed: {offered})") from None
    if dev.type == "cpu":
        return device
    if dev.type == "cuda" and gpus and (dev.index is None or dev.index < gpus):
        return device
    if dev.type == "mps" and torch.backends.mps.is_available():
        return device
    raise ConfigError(f"{flag}: {short(device)} is not available on this machine (allowed: {offered})")
