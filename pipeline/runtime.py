"""Process settings every stage starts with: the memory allocator and how OpenMP threads wait.
Neither changes a result; both change the speed (``docs/model.md``, "Speed").

- **Allocator.** glibc serves each large block with fresh pages from the kernel and gives them back
  on ``free``; a training step allocates and frees the same large tensors every time, so every step
  paid tens of thousands of page faults. tcmalloc keeps them: a training step of the code before
  issue 27 took 0.75x the time on one thread (batch 8). A stage re-executes itself once with
  Debian's ``libtcmalloc-minimal4`` preloaded when it is installed (``python3 -m
  pipeline.runtime --install``, which the README's commands run); without it, glibc is told to
  keep what it has (no ``mmap`` for large blocks, no trimming), which recovers most of that. The
  memory stays with the process: its peak, not more.
- **OpenMP waiting.** torch's OpenMP threads spin after each parallel region before they sleep
  (libgomp: 300,000 spins). On a machine whose cores are shared (two pytest workers, a detector
  beside a training run) a spinning thread holds the core another needs: training ran 1.9x slower
  than with ``GOMP_SPINCOUNT=1000``. ``OMP_WAIT_POLICY=PASSIVE`` did as well there but cost 20% on
  an idle machine. libgomp reads it when it loads, so :func:`tune_process` runs before ``import
  torch``.

``PIPELINE_TUNE=0`` in the environment leaves both alone (benchmarks of the defaults).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

SPIN_COUNT = "1000"
TCMALLOC = "libtcmalloc_minimal.so.4"
TCMALLOC_PACKAGE = "libtcmalloc-minimal4"  # Debian and Ubuntu
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # <malloc.h>
_MARK = "PIPELINE_TUNED"  # set in a re-executed process
APPLIED: dict[str, str] = {}  # what tune_process set in this process, for the stage's log


def tcmalloc_path() -> str | None:
    """The installed tcmalloc library, or ``None``."""
    for folder in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64"):
        if (Path(folder) / TCMALLOC).is_file():
            return str(Path(folder) / TCMALLOC)
    found = ctypes.util.find_library("tcmalloc_minimal")
    return found if found and Path(found).is_absolute() else None


def tune_process(reexec: bool = False) -> dict[str, str]:
    """Set this process's allocator and OpenMP wait (see the module docstring); returns what was
    set. With ``reexec`` (a stage's entry, before anything but the standard library is loaded),
    a process without tcmalloc that could have it runs again with it preloaded, same arguments.
    A setting already in the environment is kept."""
    if os.environ.get("PIPELINE_TUNE", "1") == "0":
        return APPLIED
    if "torch" not in sys.modules and "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)
        APPLIED["GOMP_SPINCOUNT"] = os.environ["GOMP_SPINCOUNT"]
    preloaded = os.environ.get("LD_PRELOAD", "")
    library = tcmalloc_path()
    if "tcmalloc" in preloaded:
        APPLIED["allocator"] = "tcmalloc (preloaded)"
    elif reexec and library and not os.environ.get(_MARK) and sys.platform.startswith("linux"):
        env = {**os.environ, _MARK: "1", "LD_PRELOAD": f"{library} {preloaded}".strip()}
        env.setdefault("TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD", str(2**40))  # no large-block notes
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
    elif _mallopt(_M_MMAP_MAX, 0) and _mallopt(_M_TRIM_THRESHOLD, 2**31 - 1):
        missing = "" if library else f"; install {TCMALLOC_PACKAGE} for tcmalloc"
        APPLIED["allocator"] = f"glibc keeping freed memory (no mmap, no trim){missing}"
    return APPLIED


def _mallopt(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux") or os.environ.get("LD_PRELOAD"):
        return False  # another allocator preloaded: its own settings apply
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        return bool(libc.mallopt(ctypes.c_int(option), ctypes.c_int(value)))
    except (OSError, AttributeError, TypeError):  # not glibc (musl has no mallopt)
        return False


def install() -> int:
    """Install tcmalloc with apt-get where there is one (as root, or through sudo); otherwise say
    what the stages will use instead. Never fails: the stages run either way."""
    if tcmalloc_path():
        print(f"tcmalloc: {tcmalloc_path()}")
        return 0
    apt = shutil.which("apt-get")
    sudo = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if apt and sudo is not None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        quiet = {"stdout": subprocess.DEVNULL, "env": env}
        ok = subprocess.run([*sudo, apt, "install", "-y", "-qq", TCMALLOC_PACKAGE], **quiet)
        if ok.returncode:  # a fresh machine's package lists may be empty
            subprocess.run([*sudo, apt, "update", "-qq"], **quiet)
            subprocess.run([*sudo, apt, "install", "-y", "-qq", TCMALLOC_PACKAGE], **quiet)
    if tcmalloc_path():
        print(f"tcmalloc: installed {tcmalloc_path()}")
    else:
        print(
            f"tcmalloc: not installed ({TCMALLOC_PACKAGE} needs apt-get as root); the stages "
            "use glibc's allocator told to keep freed memory"
        )
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="The stages' process settings.")
    parser.add_argument("--install", action="store_true", help="install tcmalloc (apt-get)")
    args = parser.parse_args()
    if args.install:
        sys.exit(install())
    print(tcmalloc_path() or "tcmalloc: not installed")
