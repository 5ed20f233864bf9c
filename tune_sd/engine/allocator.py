"""The C allocator of a process that steps a population.

A population's critic step allocates and frees tensors of some MB each (the stacked weights' gradients
and temporaries: 16 plain critics' first layer is 2.8 MB). glibc serves blocks that large with fresh
``mmap`` pages and hands them back on free, so every step pays the page faults of first touching them
again: measured on a 2 x 64 critic at P = 16, a third of the stacked step's time. Raising glibc's mmap
and trim thresholds keeps freed blocks in the heap for the next step (benchmarks/population.py: 720
against 960 member-epochs/s). Elsewhere (macOS, musl) nothing changes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20   # glibc's largest on 64-bit systems
TRIM_THRESHOLD = 512 * 2**20  # freed memory the process keeps at the top of its heap


def keep_freed_memory() -> bool:
    """Let this process's heap keep blocks up to 32 MB once freed; True where glibc took the settings."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
