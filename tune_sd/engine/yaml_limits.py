"""Every YAML the tool reads, read with bounds that hold before anything is built from it.

A YAML text of a kilobyte can stand for a value of billions of entries (anchors and aliases: ``&a1
[*a0, *a0, ...]``), or nest deeper than Python's stack; a config of a single long list can be tens of
megabytes. Each would be expanded by ``yaml.safe_load`` and then by every step after it (merging,
checking, an error message that renders the value). Here a text is refused before that, with one line
that names the file (or flag), the line and the bound:

- its size: at most :data:`MAX_BYTES` (configs, spaces, ``--set`` values; a split file of indices,
  :data:`DATA_MAX_BYTES`), checked before it is parsed;
- its nodes: at most :data:`MAX_NODES` scalars, lists and mappings, an alias counting as the whole
  value it repeats (so a billion-laughs text stops at the first level past the budget);
- its nesting: at most :data:`MAX_DEPTH` levels of lists and mappings.

The counting sits in the composer (the step from parse events to nodes), which PyYAML lets a loader
override; the events come from libyaml where it is installed. Nothing is constructed from a refused
text. Only plain data is built (PyYAML's safe constructor): no tag runs code.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, MappingStartEvent, ScalarEvent, SequenceStartEvent
from yaml.resolver import Resolver

from tune_sd.errors import ConfigError

MAX_BYTES = 2 * 1024 * 1024  # a config or a space: the largest shipped one is a few kilobytes
MAX_NODES = 20_000  # scalars, lists and mappings of one document, aliases counted as what they repeat
MAX_DEPTH = 50  # nested lists and mappings: a config is four deep, a space six
DATA_MAX_BYTES = 64 * 1024 * 1024  # a split file: index lists of a few million points
DATA_MAX_NODES = 10_000_000

try:  # libyaml's parser (C) makes the events; the composer below (Python) counts them
    from yaml.cyaml import CParser as _Parser

    _Reader = _Scanner = None
except ImportError:  # pragma: no cover - PyYAML without libyaml
    from yaml.parser import Parser as _Parser
    from yaml.reader import Reader as _Reader
    from yaml.scanner import Scanner as _Scanner


class YamlLimitError(ComposerError):
    """A text past one of the bounds (raised while composing, before any value is built)."""


class _BoundedComposer(Composer):
    """PyYAML's composer, counting nodes and nesting as it goes and refusing past the bounds."""

    def _bound_setup(self, max_nodes: int, max_depth: int) -> None:
        self.max_nodes, self.max_depth = max_nodes, max_depth
        self.nodes = 0
        self.depth = 0
        self.deepest = 0
        self.anchor_sizes: dict[str, tuple[int, int]] = {}  # anchor -> (nodes, levels) of its value

    def _refuse(self, mark, problem: str):
        raise YamlLimitError(None, None, problem, mark)

    def _count(self, nodes: int, levels: int, mark) -> None:
        self.nodes += nodes
        if self.nodes > self.max_nodes:
            self._refuse(mark, f"more than {self.max_nodes:,} values (aliases count as the value they repeat); "
                               "a config or a space holds a few hundred")
        self.deepest = max(self.deepest, self.depth + levels - 1)
        if self.depth + levels - 1 > self.max_depth:
            self._refuse(mark, f"nested more than {self.max_depth} levels deep")

    def compose_node(self, parent, index):
        if self.check_event(AliasEvent):
            event = self.peek_event()
            if event.anchor not in self.anchor_sizes:
                self._refuse(event.start_mark, f"alias *{str(event.anchor)[:40]} names no anchor defined before it")
            self.depth += 1
            try:
                self._count(*self.anchor_sizes[event.anchor], event.start_mark)
            finally:
                self.depth -= 1
            return super().compose_node(parent, index)
        event = self.peek_event()
        if not isinstance(event, (ScalarEvent, SequenceStartEvent, MappingStartEvent)):
            return super().compose_node(parent, index)
        self.depth += 1
        try:
            before, deepest = self.nodes, self.deepest
            self.deepest = self.depth
            self._count(1, 1, event.start_mark)
            node = super().compose_node(parent, index)
            if event.anchor is not None:
                self.anchor_sizes[event.anchor] = (self.nodes - before, self.deepest - self.depth + 1)
            self.deepest = max(self.deepest, deepest)
            return node
        finally:
            self.depth -= 1


if _Reader is None:
    class _Loader(_Parser, _BoundedComposer, SafeConstructor, Resolver):  # type: ignore[misc]
        def __init__(self, stream, max_nodes: int, max_depth: int):
            _Parser.__init__(self, stream)
            _BoundedComposer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            self._bound_setup(max_nodes, max_depth)

        # libyaml's parser composes nodes itself; these route composing through the counting composer
        check_node = Composer.check_node
        get_node = Composer.get_node
        get_single_node = Composer.get_single_node
else:  # pragma: no cover
    class _Loader(_Reader, _Scanner, _Parser, _BoundedComposer, SafeConstructor, Resolver):  # type: ignore[misc]
        def __init__(self, stream, max_nodes: int, max_depth: int):
            _Reader.__init__(self, stream)
            _Scanner.__init__(self)
            _Parser.__init__(self)
            _BoundedComposer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            self._bound_setup(max_nodes, max_depth)


def excerpt(text: str, width: int = 60) -> str:
    """``repr`` of the start of ``text``, with how long it is where it is cut (for messages)."""
    text = str(text)
    if len(text) <= width:
        return repr(text)
    return f"{text[:width]!r}... ({len(text):,} characters)"


def parse(text: str, label: str, *, max_bytes: int = MAX_BYTES, max_nodes: int = MAX_NODES,
          max_depth: int = MAX_DEPTH, error=ConfigError):
    """The plain data of one YAML document, within the bounds; past one, or not YAML, an ``error`` of
    one line naming ``label``, the line and column, and what is wrong (never the value itself)."""
    size = len(text.encode("utf-8", "surrogatepass")) if len(text) * 4 > max_bytes else len(text)
    if size > max_bytes:
        raise error(f"{label}: {size:,} bytes, more than the {max_bytes:,} a YAML file may hold here; "
                    f"a config or a space is a few kilobytes")
    loader = _Loader(text, max_nodes, max_depth)
    try:
        return loader.get_single_data()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or (str(e).splitlines() or [type(e).__name__])[0]
        kind = "refused" if isinstance(e, YamlLimitError) else "not valid YAML"
        raise error(f"{label}{where}: {kind} ({str(problem)[:200]})") from None
    except RecursionError:  # pragma: no cover - the depth bound stops nesting long before the stack ends
        raise error(f"{label}: refused (nested too deep)") from None
    finally:
        loader.dispose()


def read(path: str | Path, label: str | None = None, *, max_bytes: int = MAX_BYTES, max_nodes: int = MAX_NODES,
         max_depth: int = MAX_DEPTH, error=ConfigError) -> tuple[str, object]:
    """(text, data) of a YAML file; its size is checked before a byte of it is read."""
    path = Path(path)
    label = label or str(path)
    try:
        size = path.stat().st_size
        if path.is_file() and size > max_bytes:
            raise error(f"{label}: {size:,} bytes, more than the {max_bytes:,} a YAML file may hold here; "
                        f"a config or a space is a few kilobytes")
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)  # a file that grows, or is no regular file, is still read only so far
        raw = data.decode("utf-8")
    except FileNotFoundError:
        raise error(f"{label}: file not found") from None
    except UnicodeDecodeError as e:
        raise error(f"{label}: cannot read (not UTF-8 text: byte {e.start:,})") from None
    except OSError as e:
        raise error(f"{label}: cannot read ({e.strerror or type(e).__name__})") from None
    return raw, parse(raw, label, max_bytes=max_bytes, max_nodes=max_nodes, max_depth=max_depth, error=error)
