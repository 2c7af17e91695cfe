"""Process settings every stage starts with: how OpenMP threads wait and how glibc's allocator
returns memory. Neither changes a result; both change the speed (``docs/model.md``, "Speed").

- **OpenMP waiting.** torch's OpenMP threads spin after each parallel region before they sleep
  (libgomp: 300,000 spins). On a machine whose cores are shared (two pytest workers, or a
  detector beside a training run) a spinning thread holds the core another thread needs:
  training ran 1.9x slower than with ``GOMP_SPINCOUNT=1000``. ``OMP_WAIT_POLICY=PASSIVE`` (no
  spinning) did as well on a shared machine but cost 20% on an idle one; 1,000 spins cost nothing
  measurable there. libgomp reads it when it loads, so :func:`tune_process` must run before
  ``import torch``.
- **Allocator.** glibc serves each block over its dynamic mmap threshold with fresh pages from
  the kernel and returns them on ``free``; a training step allocates and frees the same large
  tensors every time, so every step paid page faults for them (half the step's faults). A fixed
  32 MiB threshold and no trimming keep those blocks in the heap for reuse. The memory stays with
  the process: its peak, not more. As fast as preloading tcmalloc, with nothing to install.

``PIPELINE_TUNE=0`` in the environment leaves both alone (for benchmarks of the defaults).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

SPIN_COUNT = "1000"
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest: HEAP_MAX_SIZE / 2 on 64-bit
TRIM_THRESHOLD = 2**31 - 1  # never return the heap's top to the kernel
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
APPLIED: dict[str, str] = {}  # what tune_process set in this process


def tune_process() -> dict[str, str]:
    """Set this process's OpenMP wait and glibc allocator settings (see the module docstring);
    returns what was set, for the log. A setting already in the environment is kept, and a
    platform without glibc keeps its allocator."""
    if os.environ.get("PIPELINE_TUNE", "1") == "0":
        return {}
    done = APPLIED
    if "torch" not in sys.modules and "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)
        done["GOMP_SPINCOUNT"] = os.environ["GOMP_SPINCOUNT"]
    if _mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and _mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD):
        done["malloc"] = f"mmap threshold {MMAP_THRESHOLD >> 20} MiB, no trim"
    return done


def _mallopt(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux") or "LD_PRELOAD" in os.environ:
        return False  # another allocator preloaded: its own settings apply
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(ctypes.c_int(option), ctypes.c_int(value)))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
