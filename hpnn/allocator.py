"""Keep freed array memory in the process for the next training step (glibc malloc).

A training step allocates the same large arrays every time: im2col matrices,
activations saved for back-propagation, gate buffers. glibc hands a freed block
of more than 128 KiB back to the kernel (``munmap``, or by trimming the heap), so
the next step's identical array comes back as fresh pages, and the first write
to every 4 KiB page is a page fault that zero-fills it. On the reference CNN at
batch 128 that is about 7,000 faults and half the step time.

:func:`configure` (run when hpnn is imported) raises glibc's thresholds so such
blocks stay in the heap and are reused: ``M_MMAP_THRESHOLD`` 32 MiB (glibc's
maximum) and ``M_TRIM_THRESHOLD`` 1 GiB. The cost is that memory freed by one
step is kept for the next instead of being returned to the OS at once; the peak
is unchanged. PyTorch's CPU guides reach the same end by preloading jemalloc or
tcmalloc. This applies to the whole process, so it is opt-out:
``HPNN_MALLOC=system`` leaves malloc as it was, and so does setting any of glibc's
own ``MALLOC_*_`` variables. Other C libraries (macOS, musl) are left alone.
"""

from __future__ import annotations

import os
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 1024 * 1024 * 1024
_GLIBC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")

_state = "not configured"


def _glibc() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (ValueError, OSError, AttributeError):
        return False


def configure() -> str:
    """Raise glibc's mmap and trim thresholds once; return what was done (see the module)."""
    global _state
    if _state != "not configured":
        return _state
    choice = os.environ.get("HPNN_MALLOC", "tuned").strip().lower()
    if choice not in ("tuned", "system"):
        raise ValueError(
            f"HPNN_MALLOC: expected 'tuned' or 'system'. Received: {os.environ['HPNN_MALLOC']!r}"
        )
    if choice == "system":
        _state = "system (HPNN_MALLOC=system)"
    elif any(v in os.environ for v in _GLIBC_VARIABLES):
        _state = "system (glibc MALLOC_*_ variables set)"
    elif not _glibc():
        _state = "system (not glibc)"
    else:
        import ctypes

        libc = ctypes.CDLL(None)
        ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        ok = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
        _state = "tuned" if ok else "system (mallopt refused)"
    return _state


def state() -> str:
    """What :func:`configure` did: ``"tuned"`` or ``"system (why)"``."""
    return _state
