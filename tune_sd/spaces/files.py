"""Space files: the studies in the spaces folder, found by name or path, read within the bounds of
:mod:`tune_sd.engine.yaml_limits` and listed with their one-line descriptions."""

from __future__ import annotations

import os
from pathlib import Path

from tune_sd.engine.config import load_yaml
from tune_sd.engine.yaml_limits import MAX_BYTES
from tune_sd.errors import ConfigError

from .parse import _build, _one_line
from .space import SearchSpace, _label

_DEFAULT_DIR = Path(__file__).resolve().parents[2] / "search_spaces"
#: Where named spaces live. The environment variable ``TUNE_SD_SPACES`` wins when it is set.
SPACES_DIR: Path = Path(os.environ["TUNE_SD_SPACES"]) if os.environ.get("TUNE_SD_SPACES") else _DEFAULT_DIR


def _spaces_dir() -> Path:
    env = os.environ.get("TUNE_SD_SPACES")
    return Path(env) if env else Path(SPACES_DIR)


def _space_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.suffix in (".yaml", ".yml") and p.is_file():
            files.setdefault(p.stem, p)
    return dict(sorted(files.items()))


def list_spaces() -> list[tuple[str, str]]:
    """(name, one-line description) of every space file in the spaces folder, sorted by name."""
    out = []
    for name, path in _space_files(_spaces_dir()).items():
        try:
            raw = path.read_text(encoding="utf-8") if path.stat().st_size <= MAX_BYTES else ""
        except (OSError, UnicodeDecodeError) as e:
            out.append((name, f"(cannot read: {e})"))
            continue
        desc = None
        try:
            _, tree = load_yaml(path, name)
            if isinstance(tree, dict) and isinstance(tree.get("description"), str):
                desc = _one_line(tree["description"])
        except ConfigError as e:  # the listing goes on; the file is refused when it is run
            out.append((name, f"(cannot read: {str(e).removeprefix(name + ': ')})"))
            continue
        out.append((name, desc or _first_comment(raw)))
    return out


def load_space(name_or_path: str | Path, overrides: dict | None = None) -> SearchSpace:
    """A space from a .yaml/.yml path, or by name (the file stem) from the spaces folder.

    ``overrides`` ({dotted key: value}, a sweep's ``--set``) are fixed before the space is checked as a
    whole (see :meth:`SearchSpace.with_overrides`)."""
    text_ = str(name_or_path)
    path = Path(text_)
    if path.suffix in (".yaml", ".yml") or "/" in text_ or os.sep in text_ or path.is_file():
        return _load_file(path, overrides)
    folder = _spaces_dir()
    files = _space_files(folder)
    if text_ not in files:
        available = ", ".join(files) if files else "none"
        raise ConfigError(f"unknown search space {text_!r} (available in {folder}: {available})")
    return _load_file(files[text_], overrides)


def _load_file(path: Path, overrides: dict | None = None) -> SearchSpace:
    label = _label(path)
    raw, tree = load_yaml(path, label)
    if tree is None:
        raise ConfigError(f"{label}: the file is empty (expected method and parameters)")
    return _build(tree, name=path.stem, path=path, label=label, comment=_first_comment(raw), overrides=overrides)


def _first_comment(raw: str) -> str:
    for line in raw.splitlines():
        s = line.strip()
        if s.startswith("#"):
            s = s.lstrip("#").strip()
            if s:
                return s
    return ""
