"""CURL beside Double DQN on MinAtar Breakout, with and without the contrastive loss.

  python -m sslax.rl.train --config=configs/curl_minatar.py --workdir=runs/curl_minatar
  (`python -m sslax.train --config=configs/curl_minatar.py` is not the entry: RL runs use
  sslax.rl.train.)

CURL (Laskin, Srinivas & Abbeel 2020, arXiv:2004.04136): two random crops of the same
observation are query and key, the key through an EMA copy of the encoder (tau 0.05 as in CURL's
table), bilinear scores q^T W k, cross-entropy with the diagonal as positives, added to the RL
loss with `curl.weights[i]` (0 = the baseline; both run in the same vmapped step). MinAtar's
10x10 frames are shifted by up to `curl.pad` cells (zero pad and crop) instead of 84-from-100
crops. The TD loss sees the raw frames in both conditions, so the only difference between them
is the auxiliary loss.

Agent: Double DQN, one 3x3 conv of 16 (MinAtar's DQN, Young & Tian 2019) + a 64-d linear layer
and LayerNorm (CURL's encoder head), a 128-unit Q head, Huber loss, Adam, batch 32, a hard
target update every 250 updates (1,000 env steps), epsilon 1 -> 0.05 over the first quarter of
the steps, an update every 4 env steps (as in DQN). Scaled down from MinAtar's 5M frames to
30,000 env steps so that 4 seeds x 2 conditions fit 10 minutes on 2 shared CPU cores.

Measured 2026-12-01 on the 2-core CPU machine shared with other jobs (load average 7-12):
6.6 min wall for both conditions x 4 seeds (compilation included). Return after 30,000 env
steps, mean ± std over the 4 seeds of each seed's 10 evaluation episodes (epsilon 0.01, fresh
env seeds):
  DQN                      3.95 ± 0.72  (per seed 5.1, 3.3, 4.0, 3.4)
  DQN + CURL (weight 1)    3.58 ± 0.53  (per seed 4.3, 2.9, 3.3, 3.8)
  random policy            0.31 (100 episodes)
CURL does not beat the baseline here: the contrastive task is learned (top-1 0.73-0.82 over the
batch of 32 at the end, against 0.03 for the baseline's untrained W), yet in the training
curves (learning_curve.png) the baseline is ahead from 8k to 20k steps (by up to 0.8 at 18k,
the one step where the mean ± std bands separate) and the two meet at 30k. The gap is within
seed noise: a second run with `--config.curl.weights="(0.0,0.1,1.0)"` (12 agents, so other
exploration draws; 9.3 min) gave DQN 3.90 ± 0.30, weight 0.1 3.20 ± 0.34, weight 1
4.18 ± 0.48, the order of weight 1 and the baseline reversed. Four seeds cannot separate them;
CURL shows no reliable gain on MinAtar Breakout at 30k steps. Plausible reasons, not tested:
MinAtar's 10x10 symbolic frames are not the pixel observations CURL was made for, and a
one-cell shift moves an object by its whole extent.

Variants: `:tiny` (tests: a few hundred steps, 2 seeds).
"""
import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.num_seeds = 4  # Agents per CURL weight: seeds 0..num_seeds-1, paired across weights.
  c.total_steps = 30_000  # Environment steps per agent.
  c.batch_size = 32
  c.log_every_steps = 2_000
  c.checkpoint_every_steps = 30_000  # Required by sslax.config; RL runs do not checkpoint.
  c.env = dict(name="minatar", game="breakout", frame_stack=1, sticky_action_prob=0.1,
               max_episode_steps=2_000)
  c.agent = dict(channels=(16,), feature_dim=64, hidden=128, gamma=0.99, double=True,
                 learning_rate=3e-4, adam_eps=1.5e-4, grad_clip_norm=10.0,
                 replay_capacity=30_000, learning_starts=1_000, train_every=4,
                 target_update_every=250, eps_start=1.0, eps_end=0.05, eps_decay_steps=7_500)
  c.curl = dict(weights=(0.0, 1.0), pad=1, encoder_tau=0.05)
  # Final return: eval.episodes epsilon-greedy episodes per agent on fresh env seeds; the curve
  # is the mean of each agent's last curve_window training episodes at every log step.
  c.eval = dict(episodes=10, epsilon=0.01, random_episodes=100, curve_window=20)

  if arg == "tiny":
    c.num_seeds = 2
    c.total_steps = 300
    c.batch_size = 8
    c.log_every_steps = 100
    c.checkpoint_every_steps = 300
    c.env.max_episode_steps = 100
    c.agent.update(feature_dim=16, hidden=16, replay_capacity=300, learning_starts=50,
                   target_update_every=20, eps_decay_steps=200)
    c.eval.update(episodes=2, random_episodes=3, curve_window=5)
  elif arg:
    raise ValueError(f"unknown variant {arg!r}: use configs/curl_minatar.py or :tiny")
  return c
