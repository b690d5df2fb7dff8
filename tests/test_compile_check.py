"""Ahead-of-time compilation of the train step for a mesh, with XLA's per-device memory."""
import pytest
from method_harness import REPO

from sslax import compile_check
from sslax import config as config_lib

TINY = f"{REPO}/configs/simclr_mnist.py:tiny"


@pytest.mark.slow
def test_fsdp_shards_the_state_that_data_parallel_replicates():
  replicated = compile_check.compile_report(config_lib.load_config(TINY))
  assert replicated["devices"] == 8 and replicated["mesh"]["data"] == 8
  # Each device holds the whole float32 state: parameters and Adam's two moments at least.
  assert replicated["argument_bytes"] >= 3 * 4 * replicated["params"]
  sharded = compile_check.compile_report(config_lib.load_config(
      TINY, mesh={"data": 1, "fsdp": 8, "tensor": 1}, sharding_rules=((".*", "fsdp"),)))
  assert sharded["mesh"]["fsdp"] == 8 and sharded["params"] == replicated["params"]
  # FSDP keeps an eighth of each divisible parameter (and its moments) per device: the saving
  # is most of the 7/8 of the replicated state (leaves too small to split stay whole).
  saved = replicated["argument_bytes"] - sharded["argument_bytes"]
  assert saved > 0.7 * 7 / 8 * 3 * 4 * replicated["params"], (saved, replicated["params"])
  assert sharded["flops_per_device"] > 0 and replicated["peak_bytes_estimate"] > 0
