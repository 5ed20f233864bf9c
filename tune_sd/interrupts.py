"""Ctrl-C in a command that reads and then writes (``analyze``, ``export``, ``status``, ``lib check``).

Python turns SIGINT into a KeyboardInterrupt wherever the main thread is; raised inside a finaliser or
a library's callback it is printed as "Exception ignored" and lost, and the command goes on to write
its output and exit 0. :class:`Watch` records every Ctrl-C as well as raising it, so a lost one is
still seen: :func:`check` raises it again before output is committed, and the command exits 130.
:func:`held` defers Ctrl-C while several files are renamed into place, so that they land together.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

_watches: list["Watch"] = []


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class Watch:
    """While open (in the main thread), Ctrl-C raises KeyboardInterrupt as usual and is remembered."""

    def __init__(self):
        self.hit = False
        self._previous = None

    def _handle(self, signum, frame):
        self.hit = True
        raise KeyboardInterrupt

    def __enter__(self) -> "Watch":
        if _main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            _watches.append(self)
        return self

    def __exit__(self, *exc) -> None:
        if self in _watches:
            _watches.remove(self)
            signal.signal(signal.SIGINT, self._previous)

    def check(self) -> None:
        if self.hit:
            raise KeyboardInterrupt


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed under any open :class:`Watch`, even where it was lost."""
    for watch in _watches:
        watch.check()


@contextmanager
def held():
    """Ctrl-C waits until the block is done (then it is raised, once); elsewhere than the main thread,
    where no signal arrives, nothing is held. A Ctrl-C already pressed and lost is raised before the block."""
    if not _main_thread():
        yield
        return
    check()
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            for watch in _watches:
                watch.hit = True
            if callable(previous):
                previous(signal.SIGINT, None)
            elif previous != signal.SIG_IGN:
                raise KeyboardInterrupt
