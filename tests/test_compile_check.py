"""Ahead-of-time compilation of the train step for a mesh, with XLA's per-device memory."""
import importlib.util
import re

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


@pytest.mark.parametrize("name, topology", [("v5e-256", "v5e:16x16"), ("v6e-8", "v6e:2x4"),
                                            ("v4-32", "v4:2x2x4"), ("v5p-128", "v5p:4x4x4"),
                                            ("v5e:4x8", "v5e:4x8")])
def test_tpu_slice_names_become_chip_grids(name, topology):
  # v4/v5p names count TensorCores (two per chip), v5e/v6e names count chips.
  assert compile_check.tpu_topology_name(name) == topology


@pytest.mark.parametrize("name, hint", [("v5e-3", "sizes: [1, 4, 8"), ("v4-31", "v4:2x2x1"),
                                        ("tpu-8", "version one of"), ("v5e", "version one of")])
def test_impossible_tpu_slices_say_what_exists(name, hint):
  with pytest.raises(ValueError, match=re.escape(hint)):
    compile_check.tpu_topology_name(name)


def test_topology_without_libtpu_says_what_to_install():
  if importlib.util.find_spec("libtpu") is not None:
    pytest.skip("libtpu is installed: the topology is available")
  with pytest.raises(RuntimeError, match=re.escape("pip install 'jax[tpu]'")):
    compile_check.tpu_devices("v5e-8")


@pytest.mark.slow
def test_image_data_not_on_this_machine_is_replaced_by_a_blank_image(capsys):
  # ImageNet is not prepared before the pod is booked; the step's shapes need only the views.
  config = config_lib.load_config(TINY)
  real = compile_check.compile_report(config)
  with config.unlocked():
    config.data.source, config.data.path = "folder", "/nonexistent/imagenet"
    config.data.channels = 1
  blank = compile_check.compile_report(config)
  assert "the data is not here" in capsys.readouterr().out
  assert blank["argument_bytes"] == real["argument_bytes"]
  assert blank["params"] == real["params"]
