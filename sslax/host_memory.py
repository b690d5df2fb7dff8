"""glibc's malloc told to keep freed memory, so a CPU train step stops paying page faults.

XLA:CPU allocates an executable's temporaries as one block per call (1.76 GB for the MAE
ViT-Tiny/4 benchmark step at batch 256), from a thread of its own pool. glibc serves a block
that large with a fresh `mmap` and unmaps it when the call ends, so every step touches ~480,000
new zeroed pages: 0.9 s of kernel time in a 2.0 s step on the 2-core AMD EPYC of 2026-12-06.
Raising `M_MMAP_THRESHOLD` cannot help: a thread's own arena is capped at 64 MiB and glibc falls
back to `mmap` past it. With one arena, no `mmap` and no trimming, the block comes from the main
heap once and every later step reuses it (0 faults a step; 2.0 -> 1.5 s). The process keeps its
peak heap until it exits, which a training or evaluation process does anyway.

The settings must come before the process starts a second thread: importing numpy starts
OpenBLAS's, JAX's CPU backend starts its pool, and a thread that already has an arena keeps it.
Measured: applied after `import numpy, jax`, pool threads kept arenas of their own and the heap
grew by the block's size on some steps (2.5 -> 7.7 GB in 12 steps). So `keep_freed_memory` does
nothing in a process that already has several threads, and the command-line modules call it
before their imports (`if __name__ == "__main__"` at their top). `SSLAX_KEEP_FREED_MEMORY=0`
leaves malloc as it is. Linux with glibc only; elsewhere it does nothing.
"""
import ctypes
import os

# mallopt parameters, glibc's malloc.h; M_TRIM_THRESHOLD = -1 never trims (mallopt(3)).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -3, -4, -8


def _mallopt():
  """glibc's mallopt, or None without glibc."""
  try:
    return ctypes.CDLL("libc.so.6").mallopt
  except (OSError, AttributeError):
    return None


def thread_count() -> int | None:
  """This process's threads, native ones included (Linux /proc); None where unknown."""
  try:
    return len(os.listdir("/proc/self/task"))
  except OSError:
    return None


def keep_freed_memory(one_arena: bool = True) -> bool:
  """No `mmap`, no trimming and (`one_arena`) every thread on the main heap, if this process has
  one thread; True if applied. Without `one_arena` only blocks that the calling thread allocates
  are kept (a profiler that runs the step synchronously wants that: its own threads' allocations
  would contend for the one arena's lock)."""
  if os.environ.get("SSLAX_KEEP_FREED_MEMORY", "1") == "0" or thread_count() != 1:
    return False
  mallopt = _mallopt()
  if mallopt is None:
    return False
  settings = [(M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, -1)] + [(M_ARENA_MAX, 1)] * one_arena
  return all(mallopt(option, value) == 1 for option, value in settings)


def keep_freed_small_blocks() -> None:
  """Blocks up to 32 MiB (glibc's largest mmap threshold) come from the heap and stay there, in
  any process, threads or not: what a Grain worker's batched augmentation needs (its 0.1-2 MB
  temporaries otherwise cost page faults worth 4-5x a batched rotation's arithmetic)."""
  mallopt = _mallopt()
  if mallopt is not None:
    mallopt(M_MMAP_THRESHOLD, 32 << 20)
    mallopt(M_TRIM_THRESHOLD, 1 << 30)
