"""Keep freed memory in the process (glibc), so a training step's arrays do not cost
page faults every step.

A step allocates and frees tens of megabytes of NumPy arrays (the decoder's saved
activations, gradients, scratch). glibc's malloc hands blocks over 128 KiB back to the
kernel when they are freed, either as separate mappings or by trimming the heap, and
the next step's arrays then fault their pages in again, each one zeroed by the kernel.
On a CMUdict transducer (GRU 1x256 encoder, 512-unit decoder, batches of 64, one
thread) that was ~120k page faults per 30 steps and 5-9% of the CPU time
(docs/internals/seq2seq.md). What PyTorch users get from jemalloc or tcmalloc, two
mallopt calls give here: blocks up to 32 MiB come from the heap, and the heap is not
trimmed, so the process keeps its peak and reuses it. Other C libraries (macOS, musl,
Windows) are left as they are.

The setting is process-wide, so the command line (the process's owner) makes it, and
the benchmarks that measure what the command line does; the Python API leaves a host
program's allocator alone.
"""
import ctypes
import functools
import sys

M_TRIM_THRESHOLD = -1    # glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_MAX = 32 << 20      # the largest mmap threshold glibc accepts on 64-bit systems
NEVER = 2**31 - 1        # trim threshold: never give the heap's top back
# the same settings for a child process, read by glibc at its start
ENV = {"MALLOC_MMAP_THRESHOLD_": str(MMAP_MAX), "MALLOC_TRIM_THRESHOLD_": str(NEVER)}


@functools.cache
def keep_freed_memory():
    """Ask glibc to keep freed blocks for reuse; -> True if it agreed, False where the C
    library is not glibc (nothing changes). Idempotent."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version              # glibc's own symbol: not musl
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_MAX)) and bool(mallopt(M_TRIM_THRESHOLD, NEVER))
