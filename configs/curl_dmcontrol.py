"""CURL's DeepMind Control 100k recipe (pixel SAC + CURL), for real hardware: NOT run here.

  python -m sslax.rl.train --config=configs/curl_dmcontrol.py --workdir=runs/curl_cheetah
  (needs `pip install 'sslax[rl-control]'` and MUJOCO_GL=egl; `python -m sslax.train
  --config=configs/curl_dmcontrol.py` is not the entry: RL runs use sslax.rl.train.)

The settings of CURL's DMControl hyperparameter table (Laskin, Srinivas & Abbeel 2020,
arXiv:2004.04136, appendix): renders of 100x100 randomly cropped to 84x84, 3 stacked frames,
action repeat 2 (finger spin, walker walk), 8 (cartpole swingup), 4 otherwise; replay 100,000;
1,000 initial random steps; SAC with 1,024 hidden units, Adam (beta1 0.9 for encoder, actor and
critic; 0.5 for the temperature), lr 2e-4 for cheetah run and 1e-3 otherwise, temperature lr
1e-4 and initial temperature 0.1, discount 0.99, batch 512 (the official repository's
cartpole command uses 128); critic EMA tau 0.01 with a target update every 2 steps, encoder EMA
tau 0.05; encoder of 4 conv layers of 32 filters (ReLU) and a 50-d latent; 10 evaluation
episodes. 100k means environment steps, i.e. 100,000 / action_repeat agent steps.

Status: sslax.rl implements the DMControl pixel environment (sslax.rl.envs.DMControlEnv) and
the CURL loss; the SAC agent these keys describe is not implemented yet, so this config is the
recipe to run once it is (sslax.rl.train stops with a one-line error for continuous actions).
Variants: the task, `:cheetah_run` (default), `:cartpole_swingup`, `:finger_spin`,
`:walker_walk`, `:reacher_easy`, `:ball_in_cup_catch`.
"""
import ml_collections

ACTION_REPEAT = {"finger_spin": 2, "walker_walk": 2, "cartpole_swingup": 8}  # 4 otherwise.
TASKS = ("cheetah_run", "cartpole_swingup", "finger_spin", "walker_walk", "reacher_easy",
         "ball_in_cup_catch")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  task = arg or "cheetah_run"
  if task not in TASKS:
    raise ValueError(f"unknown DMControl task {task!r}: use one of {', '.join(TASKS)}")
  domain, _, name = task.rpartition("_") if task.count("_") > 1 else task.partition("_")
  repeat = ACTION_REPEAT.get(task, 4)
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.num_seeds = 5
  c.total_steps = 100_000 // repeat  # Agent steps: 100k environment steps.
  c.batch_size = 512
  c.log_every_steps = 10_000 // repeat
  c.checkpoint_every_steps = 10_000 // repeat  # Required by sslax.config; not used yet.
  c.env = dict(name="dmcontrol", domain=domain, task=name, frame_stack=3, action_repeat=repeat,
               size=100)
  c.agent = dict(algorithm="sac", hidden=1024, conv_layers=4, conv_filters=32, feature_dim=50,
                 gamma=0.99, learning_rate=2e-4 if task == "cheetah_run" else 1e-3, beta1=0.9,
                 alpha_learning_rate=1e-4, alpha_beta1=0.5, init_temperature=0.1,
                 critic_tau=0.01, critic_target_update_every=2, actor_update_every=2,
                 replay_capacity=100_000, learning_starts=1_000)
  c.curl = dict(weights=(1.0,), crop_size=84, encoder_tau=0.05)
  c.eval = dict(episodes=10, epsilon=0.0, random_episodes=10, curve_window=10)
  return c
