"""sslax.rl: CURL loss and random shift, replay buffer, DQN targets, env adapters, the agent's
update and a tiny end-to-end run that writes the learning curve and the results."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslax import config as config_lib
from sslax.rl import curl, envs
from sslax.rl.agent import Agent, dqn_targets, patches3x3
from sslax.rl.replay import ReplayBuffer
from sslax.rl.train import learning_curve, run

REPO = __file__.rsplit("/tests/", 1)[0]
TINY = f"{REPO}/configs/curl_minatar.py:tiny"


def test_curl_loss_matches_numpy_and_keys_get_no_gradient():
  rng = np.random.default_rng(0)
  q, k, w = rng.normal(size=(6, 4)), rng.normal(size=(6, 4)), rng.normal(size=(4, 4))
  logits = q @ w @ k.T
  logits -= logits.max(axis=1, keepdims=True)
  log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
  loss, top1 = curl.curl_loss(jnp.asarray(q), jnp.asarray(k), jnp.asarray(w))
  np.testing.assert_allclose(loss, -np.mean(np.diag(log_probs)), rtol=1e-5)
  np.testing.assert_allclose(top1, np.mean(logits.argmax(axis=1) == np.arange(6)))
  grad_k = jax.grad(lambda k: curl.curl_loss(jnp.asarray(q), k, jnp.asarray(w))[0])(
      jnp.asarray(k))
  assert np.all(np.asarray(grad_k) == 0)
  # Unit-norm keys equal to the queries with W = I: the diagonal wins every row.
  unit = jnp.asarray(q / np.linalg.norm(q, axis=1, keepdims=True))
  assert float(curl.curl_loss(unit, unit, jnp.eye(4))[1]) == 1.0


def test_random_shift_is_a_window_of_the_padded_image():
  images = np.random.default_rng(1).random((16, 5, 5, 2)).astype(np.float32)
  pad = 1
  shifted = np.asarray(curl.random_shift(jax.random.key(0), jnp.asarray(images), pad))
  assert shifted.shape == images.shape
  padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  offsets = []
  for i in range(len(images)):
    hits = [(a, b) for a in range(3) for b in range(3)
            if np.array_equal(padded[i, a:a + 5, b:b + 5], shifted[i])]
    assert hits, f"image {i} is not a window of its padded image"
    offsets.append(hits[0])
  assert len(set(offsets)) > 1  # Each image draws its own offset.
  np.testing.assert_array_equal(curl.random_shift(jax.random.key(0), jnp.asarray(images), 0),
                                images)


def test_patches3x3_times_a_kernel_is_a_valid_convolution():
  x = jax.random.normal(jax.random.key(0), (2, 6, 5, 3))
  kernel = jax.random.normal(jax.random.key(1), (3, 3, 3, 4))
  conv = jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID",
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))
  np.testing.assert_allclose(patches3x3(x) @ kernel.reshape(27, 4), conv, rtol=1e-5, atol=1e-5)


def test_replay_buffer_wraps_and_samples_each_agents_own_transitions():
  buffer = ReplayBuffer(agents=2, capacity=5, obs_shape=(2, 2, 1))
  for t in range(7):  # Two more than the capacity: slots 0 and 1 are overwritten.
    obs = np.stack([np.full((2, 2, 1), (t + a) % 2) for a in range(2)]).astype(np.float32)
    buffer.add(obs, np.array([t, 10 + t]), np.array([t, -t], np.float32), 1 - obs,
               np.array([t == 6, False]))
  assert buffer.size == 5
  assert sorted(buffer.action[0]) == [2, 3, 4, 5, 6]
  batch = buffer.sample(np.random.default_rng(0), 64)
  assert batch["obs"].shape == (2, 64, 2, 2, 1) and batch["obs"].dtype == np.float32
  t = batch["action"][0]
  assert set(t) <= {2, 3, 4, 5, 6} and len(set(t)) > 1
  np.testing.assert_array_equal(batch["reward"][0], t)
  np.testing.assert_array_equal(batch["reward"][1], -(batch["action"][1] - 10))
  np.testing.assert_array_equal(batch["obs"][0, :, 0, 0, 0], t % 2)  # Stored rows, uint8 back.
  np.testing.assert_array_equal(batch["next_obs"][1, :, 0, 0, 0],
                                1 - (batch["action"][1] - 9) % 2)
  np.testing.assert_array_equal(batch["terminal"][0], t == 6)
  with pytest.raises(ValueError, match="empty replay buffer"):
    ReplayBuffer(1, 3, (1,)).sample(np.random.default_rng(0), 2)


@pytest.mark.parametrize("double", [True, False])
def test_dqn_targets_match_numpy(double):
  rng = np.random.default_rng(2)
  online, target = rng.normal(size=(8, 3)), rng.normal(size=(8, 3))
  reward, terminal = rng.normal(size=8), (rng.random(8) < 0.3).astype(np.float64)
  best = (online if double else target).argmax(axis=1)
  expected = reward + 0.9 * (1 - terminal) * target[np.arange(8), best]
  got = dqn_targets(jnp.asarray(online), jnp.asarray(target), jnp.asarray(reward),
                    jnp.asarray(terminal), 0.9, double)
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_minatar_adapter_stacks_frames_and_truncates():
  env = envs.MinAtarEnv("breakout", seed=0, frame_stack=3, max_episode_steps=4)
  assert env.observation_shape == (10, 10, 12) and env.num_actions == 3
  first = env.reset()
  assert first.shape == (10, 10, 12) and first.dtype == np.float32
  np.testing.assert_array_equal(first[..., :4], first[..., 8:])  # Reset repeats the frame.
  previous = first
  for t in range(1, 5):  # The ball cannot fall out within 4 steps: step 4 is a truncation.
    obs, _, terminated, truncated = env.step(1)
    np.testing.assert_array_equal(obs[..., :8], previous[..., 4:])  # Oldest frame dropped.
    np.testing.assert_array_equal(obs[..., 8:], env._env.state())
    assert not terminated and truncated == (t == 4)
    previous = obs
  returns = envs.random_policy_returns(envs.MinAtarEnv("breakout", 0, max_episode_steps=50), 3, 0)
  assert returns.shape == (3,) and np.all(returns >= 0)


def test_bad_env_names_and_missing_extras_are_one_line_errors():
  with pytest.raises(ValueError, match="unknown MinAtar game 'pong'"):
    envs.MinAtarEnv("pong", seed=0)
  with pytest.raises(ValueError, match="unknown env.name 'gym'"):
    envs.make_env({"name": "gym"}, 0)
  for make, extra in ((lambda: envs.DMControlEnv("cheetah", "run", 0), "rl-control"),
                      (lambda: envs.AtariEnv("breakout", 0), "rl-atari")):
    try:
      make()
    except ImportError as e:  # The extras are not installed on the test machine.
      assert f"sslax[{extra}]" in str(e) and "\n" not in str(e)


def test_update_trains_curl_matrix_only_with_weight_and_moves_targets():
  config = config_lib.load_config(TINY)
  cfg = config.agent
  agent = Agent(cfg, config.curl, (10, 10, 4), 3)
  states = agent.init(jax.random.split(jax.random.key(0), 2))
  w0 = np.asarray(states["params"]["curl_w"])
  rng = np.random.default_rng(0)
  batch = {"obs": (rng.random((2, 8, 10, 10, 4)) < 0.2).astype(np.float32),
           "action": rng.integers(0, 3, (2, 8)).astype(np.int32),
           "reward": rng.normal(size=(2, 8)).astype(np.float32),
           "next_obs": (rng.random((2, 8, 10, 10, 4)) < 0.2).astype(np.float32),
           "terminal": np.zeros((2, 8), np.float32)}
  before = {k: jax.tree.map(np.array, states[k]) for k in ("key_encoder", "target")}  # Copies.
  states, metrics = agent.update(states, batch, np.array([0.0, 1.0], np.float32))
  w1 = np.asarray(states["params"]["curl_w"])
  np.testing.assert_array_equal(w1[0], w0[0])  # Weight 0: the baseline, W untouched.
  assert not np.allclose(w1[1], w0[1])
  assert metrics["td_loss"].shape == (2,)
  tau = config.curl.encoder_tau
  expected = jax.tree.map(lambda k, p: (1 - tau) * k + tau * p, before["key_encoder"],
                          states["params"]["encoder"])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               states["key_encoder"], expected)
  for _ in range(cfg.target_update_every - 1):  # The hard copy lands on update N.
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), states["target"],
                 before["target"])
    states, _ = agent.update(states, batch, np.array([0.0, 1.0], np.float32))
  online = {k: states["params"][k] for k in ("encoder", "q_head")}
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), states["target"], online)


def test_learning_curve_averages_the_last_episodes_by_each_step():
  episodes = [[(5, 1.0), (8, 3.0), (20, 5.0)], []]
  curve = learning_curve(episodes, np.array([4, 10, 20]), window=2)
  np.testing.assert_array_equal(curve[0], [np.nan, 2.0, 4.0])
  assert np.all(np.isnan(curve[1]))


def test_configs_load_and_bad_variants_fail():
  for spec in ("", ":tiny"):
    config = config_lib.load_config(f"{REPO}/configs/curl_minatar.py{spec}")
    assert config.env.name == "minatar" and 0.0 in config.curl.weights
  for task, repeat in (("cheetah_run", 4), ("cartpole_swingup", 8), ("walker_walk", 2)):
    config = config_lib.load_config(f"{REPO}/configs/curl_dmcontrol.py:{task}")
    assert config.env.action_repeat == repeat and config.total_steps * repeat == 100_000
  with pytest.raises(ValueError, match="unknown variant 'huge'"):
    config_lib.load_config(f"{REPO}/configs/curl_minatar.py:huge")


@pytest.mark.slow
def test_tiny_run_writes_the_learning_curve_and_results(tmp_path):
  config = config_lib.load_config(TINY)
  results = run(config, str(tmp_path))
  assert os.path.getsize(tmp_path / "learning_curve.png") > 1000
  with open(tmp_path / "results.json") as f:
    saved = json.load(f)
  assert saved["env_steps"] == config.total_steps
  assert set(saved["conditions"]) == {"DQN", "DQN + CURL (weight 1)"}
  for condition in saved["conditions"].values():
    assert len(condition["eval_return"]["per_seed"]) == config.num_seeds
    assert np.array(condition["curve"]).shape == (config.num_seeds, len(saved["curve_steps"]))
  assert saved["random_policy_return"]["episodes"] == config.eval.random_episodes
  assert results["conditions"].keys() == saved["conditions"].keys()
  lines = [json.loads(x) for x in open(tmp_path / "metrics.jsonl")]
  assert [x["step"] for x in lines] == [100, 100, 200, 200, 300, 300]
