"""The shared train step: sharded over 8 devices it computes what one device computes."""
import jax
import numpy as np
import pytest
from method_harness import assert_eight_devices_match_one, run_steps

from sslax import config as config_lib
from sslax import optim, parallel
from sslax import state as state_lib
from sslax.data import pipeline, sources
from sslax.methods import get_method

REPO = __file__.rsplit("/tests/", 1)[0]


@pytest.mark.parametrize("encoder", [
    dict(name="small_cnn", widths=(4, 8), convs_per_stage=1, dtype="float32"),
    # XLA's own weight gradient: the CPU default (chunked) compiles ~3x longer here and is
    # tested equal to it in tests/test_conv.py.
    dict(name="resnet18", width=4, cifar_stem=True, dtype="float32", conv_weight_grad="xla"),
])
def test_eight_devices_match_one_device(encoder):
  config = config_lib.load_config(f"{REPO}/configs/simclr_mnist.py:tiny", total_steps=3)
  config.model.encoder = encoder
  assert_eight_devices_match_one(config)


def test_state_is_laid_out_on_its_shardings():
  config = config_lib.load_config(f"{REPO}/configs/simclr_mnist.py:tiny")
  mesh = parallel.make_mesh({"data": 2, "fsdp": 4})
  method = get_method(config)
  source = sources.make_source(config.data, "pretrain")
  sample = pipeline.sample_batch(source, method.views())
  tx, _ = optim.make_optimizer(config.optimizer, config.total_steps, config.batch_size)
  rules = (("projector/.*kernel", "fsdp"),)
  _, shardings = state_lib.state_shardings(method, tx, sample, 0, mesh, rules)
  state = state_lib.create_state(method, tx, sample, 0, shardings)
  kernel = state["params"]["projector"]
  kernel = next(v for k, v in jax.tree_util.tree_leaves_with_path(kernel)
                if "kernel" in parallel.path_name(k))
  assert "fsdp" in tuple(kernel.sharding.spec)
  assert len({s.data.shape for s in kernel.addressable_shards}) == 1
  assert kernel.addressable_shards[0].data.size * 4 == kernel.size
  encoder_leaf = jax.tree.leaves(state["params"]["encoder"])[0]
  assert encoder_leaf.sharding.is_fully_replicated


def test_bfloat16_compute_keeps_float32_parameters_and_a_float32_loss():
  config = config_lib.load_config(f"{REPO}/configs/simclr_mnist.py:tiny", total_steps=2)
  config.model.encoder.dtype = "bfloat16"
  losses, params, stats, _ = run_steps(config, jax.devices()[:1], num_steps=2)
  assert np.all(np.isfinite(losses))
  dtypes = {x.dtype for x in jax.tree.leaves(params) + jax.tree.leaves(stats)}
  assert dtypes == {np.dtype("float32")}
  f32_losses, *_ = run_steps(config_lib.load_config(f"{REPO}/configs/simclr_mnist.py:tiny"),
                               jax.devices()[:1], num_steps=2)
  np.testing.assert_allclose(losses, f32_losses, rtol=0.05)  # Same model, rounded activations.
  assert not np.array_equal(losses, f32_losses)
