"""Every config in configs/ loads, validates and builds its method, optimizer and state shapes.

Benchmark configs read datasets that are not on this machine, so their state is built from a
synthetic batch of the right shapes with `jax.eval_shape`: nothing is computed or allocated,
but every key the method, model and optimizer read must exist and fit.
"""
import glob
import os

import jax
import numpy as np
import pytest

from sslax import config as config_lib
from sslax import optim
from sslax.methods import get_method

REPO = __file__.rsplit("/tests/", 1)[0]
# The reinforcement-learning recipes (curl_*.py) run through sslax.rl.train, not a Method: their
# configs are tested in tests/test_rl.py.
CONFIGS = sorted(p for p in glob.glob(f"{REPO}/configs/*.py")
                 if not os.path.basename(p).startswith("curl_"))


def synthetic_batch(method, config):
  if hasattr(method, "synthetic_batch"):  # Video methods: frames of their own example shapes.
    return method.synthetic_batch(2)
  if config.method in ("mlm", "gpt"):  # Text: token ids of the configured length.
    ids = np.full((2, config.data.seq_len), 5, np.int32)
    return {"input_ids": ids, "attention_mask": np.ones_like(ids),
            "token_type_ids": np.zeros_like(ids)}
  channels = 1 if config.data.source == "mnist_embedded" else 3
  if config.method == "clip":  # Image-text pairs: one view and a caption.
    size, ids = config.data.augment["size"], np.full((2, config.data.seq_len), 5, np.int32)
    return {"image": np.zeros((2, size, size, channels), np.float32), "input_ids": ids,
            "attention_mask": np.ones_like(ids)}
  views = tuple(np.zeros((2, spec["size"], spec["size"], channels), np.float32)
                for spec in method.views())
  return {"views": views}


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_builds_its_method_and_state(path):
  config = config_lib.load_config(path)
  config_lib.validate(config)
  method = get_method(config)
  batch = synthetic_batch(method, config)
  params, _, _ = jax.eval_shape(method.init, jax.random.key(0), batch)
  tx, schedule = optim.make_optimizer(config.optimizer, config.total_steps, config.batch_size)
  jax.eval_shape(tx.init, params)
  assert float(schedule(config.total_steps // 2)) > 0
  assert config.total_steps > 0 and len(jax.tree.leaves(params)) > 0
  # The run-wide keys exist in every config, so --config.grad_accum_steps=4 and
  # --config.nan_policy.action=rollback reach them (ml_collections refuses unknown keys).
  overridden = config_lib.with_overrides(config, {"grad_accum_steps": 4,
                                                  "nan_policy.action": "rollback"})
  assert overridden.grad_accum_steps == 4 and overridden.nan_policy.action == "rollback"
  # The docstring is the recipe's documentation: it names the command that runs it.
  with open(path) as f:
    assert "python -m sslax.train --config=configs/" + os.path.basename(path) in f.read()
