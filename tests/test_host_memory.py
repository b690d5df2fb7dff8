"""sslax/host_memory.py: a large block freed by a thread is reused, not mapped and faulted again."""
import json
import os
import subprocess
import sys

import pytest

from sslax import host_memory

# Mallocs, touches and frees a 256 MiB block from a new thread three times, as XLA:CPU's pool
# threads do with a step's temporaries (numpy's arrays would ask for huge pages); prints whether
# the settings applied and the page faults of each round.
SCRIPT = """
import ctypes, json, resource, threading
from sslax import host_memory
applied = host_memory.keep_freed_memory()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def round_faults():
  before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
  def work():
    block = libc.malloc(256 << 20)
    ctypes.memset(block, 1, 256 << 20)
    libc.free(block)
  thread = threading.Thread(target=work)
  thread.start()
  thread.join()
  return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

print(json.dumps({"applied": applied, "faults": [round_faults() for _ in range(3)]}))
"""
PAGES = (256 << 20) // 4096

linux_glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")


def run_script(keep: str) -> dict:
  env = {**os.environ, "SSLAX_KEEP_FREED_MEMORY": keep}
  done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env,
                        check=True)
  return json.loads(done.stdout.strip().splitlines()[-1])


@linux_glibc
def test_block_freed_by_a_thread_is_reused_without_page_faults():
  result = run_script("1")
  assert result["applied"]
  first, *later = result["faults"]
  assert first > PAGES // 2  # The first round touches fresh pages...
  assert all(f < PAGES // 20 for f in later)  # ...later rounds reuse them.


@linux_glibc
def test_without_it_every_round_faults_again():
  result = run_script("0")
  assert not result["applied"]
  assert all(f > PAGES // 2 for f in result["faults"])


def test_does_nothing_once_the_process_has_threads():
  assert host_memory.thread_count() > 1  # pytest has imported numpy and JAX.
  assert not host_memory.keep_freed_memory()
