"""Every parallelism mode trains the same model: FSDP alone, and data parallel, FSDP and tensor
parallel at once, on 8 simulated devices give one device's losses and final state.

MAE with a tiny ViT (attention heads and MLP units split by configs/mae_imagenet.py's rules,
everything else FSDP), so the rules of a real recipe are what is exercised.
"""
import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P
from method_harness import REPO, run_steps

from sslax import config as config_lib
from sslax import optim, parallel
from sslax import state as state_lib
from sslax.data import pipeline, sources
from sslax.methods import get_method

TINY = f"{REPO}/configs/mae_mnist.py:tiny"
TENSOR_RULES = tuple(config_lib.load_config(f"{REPO}/configs/mae_imagenet.py").sharding_rules)
MODES = {
    "fsdp": ({"data": 1, "fsdp": 8}, ((".*", "fsdp"),)),
    "data+fsdp+tensor": ({"data": 2, "fsdp": 2, "tensor": 2}, (*TENSOR_RULES, (".*", "fsdp"))),
}


@pytest.fixture(scope="module")
def one_device():
  return run_steps(config_lib.load_config(TINY), jax.devices()[:1])


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_gives_the_losses_and_state_of_one_device(one_device, mode):
  mesh_axes, rules = MODES[mode]
  sharded = run_steps(config_lib.load_config(TINY), jax.devices()[:8], mesh_axes=mesh_axes,
                      rules=rules)
  assert np.all(np.isfinite(one_device[0])) and one_device[0][0] != one_device[0][-1]
  np.testing.assert_allclose(sharded[0], one_device[0], rtol=2e-5)
  for a, b in zip(jax.tree.leaves(one_device[1:]), jax.tree.leaves(sharded[1:]), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_the_rules_lay_out_heads_mlp_and_the_rest_as_declared():
  config = config_lib.load_config(TINY)
  method = get_method(config)
  source = sources.make_source(config.data, "pretrain")
  sample = pipeline.sample_batch(source, method.views())
  tx, _ = optim.make_optimizer(config.optimizer, config.total_steps, config.batch_size)
  mesh = parallel.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  _, shardings = state_lib.state_shardings(method, tx, sample, config.seed, mesh,
                                           MODES["data+fsdp+tensor"][1])
  block = shardings["params"]["encoder"]["block0"]
  assert block["attn"]["query"]["kernel"].spec == P(None, "tensor", None)
  assert block["attn"]["out"]["kernel"].spec == P("tensor", None, None)
  assert block["mlp"]["fc1"]["kernel"].spec == P(None, "tensor")
  assert block["mlp"]["fc2"]["kernel"].spec == P("tensor", None)
  # Not matched by a tensor rule: FSDP shards the largest dimension that divides over 2.
  assert "fsdp" in shardings["params"]["encoder"]["patch_embed"]["kernel"].spec
  # The optimizer's moments follow their parameters (the state is laid out by path).
  moments = [s.spec for path, s in jax.tree_util.tree_leaves_with_path(shardings["opt_state"])
             if parallel.path_name(path).endswith("encoder/block0/mlp/fc1/kernel")]
  assert moments and all(spec == P(None, "tensor") for spec in moments)
