"""PyTorch twins of the JAX benchmarks, timed the same way: run with a separate torch venv.

  /tmp/torchref/bin/python benchmarks/torch_reference.py --bench=simclr_resnet18 --steps=3
  /tmp/torchref/bin/python benchmarks/torch_reference.py --bench=mae_vit_tiny
  /tmp/torchref/bin/python benchmarks/torch_reference.py --bench=bert_small
  /tmp/torchref/bin/python benchmarks/torch_reference.py --bench=transform --workers=2

torch is not a dependency of sslax; this file imports nothing from it. Every bench is float32 on
the CPU, random data, one JSON line with the fields of benchmarks/throughput.py: the median of
`--steps` train steps after `--warmup` (examples_per_sec, step_time_ms), or images/s of the
two-view transform through a torch DataLoader with `--workers` workers. The models are written
here to the shapes of the JAX runs that benchmarks/side_by_side.py pairs them with:
- simclr_resnet18: ResNet-18 with the CIFAR stem (3x3 conv, no max-pool), projector 512-2048-128
  with batch norm, NT-Xent at temperature 0.2 over two 32x32 views, SGD + LARS trust ratio.
- mae_vit_tiny: ViT-Tiny/4 (192 wide, 12 blocks, 3 heads) on 32x32, 75% of the 64 patches masked,
  a 128-wide, 2-block decoder (4 heads), per-patch normalised pixel loss, AdamW.
- bert_small: 4 layers, 256 hidden, 4 heads, MLP 1,024, learned positions, dropout 0.1, vocab
  8,192, tied output; MLM on 32 gathered positions a sequence plus NSP, AdamW, batch 32 x 128.
- transform: the two-view SimCLR augmentation of configs/simclr_mnist.py (`--spec=mnist`: crop,
  rotation p 0.5, brightness/contrast jitter p 0.8, blur p 0.3, noise p 0.3) or
  configs/simclr_cifar10.py (`--spec=cifar`: crop, flip, full colour jitter, grayscale) on random
  uint8 32x32x3 images, with PIL operations as torchvision's transforms apply them to PIL images
  (torchvision itself is not importable in that venv: its wheel is a CUDA build).
"""
import argparse
import json
import math
import random
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance, ImageFilter
from torch import nn

# ----------------------------------------------------------------------------- models


class BasicBlock(nn.Module):
  def __init__(self, cin: int, cout: int, stride: int):
    super().__init__()
    self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(cout)
    self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(cout)
    self.shortcut = nn.Sequential()
    if stride != 1 or cin != cout:
      self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                    nn.BatchNorm2d(cout))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    y = F.relu(self.bn1(self.conv1(x)))
    return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResNet18Cifar(nn.Module):
  """ResNet-18 (He et al. 2016) with the CIFAR stem: [B, 3, 32, 32] -> [B, 512]."""

  def __init__(self):
    super().__init__()
    layers = [nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()]
    cin = 64
    for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
      layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
      cin = cout
    self.body = nn.Sequential(*layers)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.body(x).mean(dim=(2, 3))


def projector(dims: tuple[int, ...]) -> nn.Sequential:
  """Dense -> BN -> ReLU per hidden width, then a final Dense (SimCLR v2's head)."""
  layers = []
  for din, dout in zip(dims[:-2], dims[1:-1], strict=True):
    layers += [nn.Linear(din, dout, bias=False), nn.BatchNorm1d(dout), nn.ReLU()]
  return nn.Sequential(*layers, nn.Linear(dims[-2], dims[-1]))


def nt_xent(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float) -> torch.Tensor:
  """SimCLR's loss over 2B embeddings: each view's positive is its other view."""
  z = F.normalize(torch.cat([z_a, z_b]), dim=1)
  logits = z @ z.T / temperature
  logits.fill_diagonal_(float("-inf"))
  n = z_a.shape[0]
  targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
  return F.cross_entropy(logits, targets)


class Lars(torch.optim.Optimizer):
  """SGD with momentum whose step per weight matrix is scaled by eta ||w|| / ||g + wd w||
  (You et al. 2017); biases and norms (1-D) take plain steps, as in SimCLR."""

  def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 1e-6,
               eta: float = 1e-3):
    super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, eta=eta))

  @torch.no_grad()
  def step(self):
    for group in self.param_groups:
      for p in group["params"]:
        if p.grad is None:
          continue
        g = p.grad
        if p.ndim > 1:
          g = g + group["weight_decay"] * p
          w_norm, g_norm = torch.linalg.norm(p), torch.linalg.norm(g)
          trust = torch.where((w_norm > 0) & (g_norm > 0), group["eta"] * w_norm / g_norm, 1.0)
          g = g * trust
        buf = self.state[p].setdefault("momentum", torch.zeros_like(p))
        buf.mul_(group["momentum"]).add_(g)
        p.add_(buf, alpha=-group["lr"])


class Block(nn.Module):
  """Pre-norm Transformer block: attention and a GELU MLP, each with a residual."""

  def __init__(self, dim: int, heads: int, mlp: int, dropout: float = 0.0):
    super().__init__()
    self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
    self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
    self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Dropout(dropout),
                             nn.Linear(mlp, dim))
    self.drop = nn.Dropout(dropout)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    h = self.norm1(x)
    x = x + self.drop(self.attn(h, h, h, need_weights=False)[0])
    return x + self.drop(self.mlp(self.norm2(x)))


def sincos_2d(grid: int, dim: int) -> torch.Tensor:
  """Fixed 2-D sin-cos position embeddings [grid * grid, dim] (MAE)."""
  omega = 1.0 / 10000 ** (torch.arange(dim // 4) / (dim / 4))
  ys, xs = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
  parts = [f(c.flatten()[:, None] * omega) for c in (ys, xs) for f in (torch.sin, torch.cos)]
  return torch.cat(parts, dim=1)


class MAE(nn.Module):
  """He et al. 2022: a ViT encodes the visible 25% of the patches, a light decoder predicts the
  normalised pixels of the masked ones."""

  def __init__(self, size: int = 32, patch: int = 4, dim: int = 192, depth: int = 12,
               heads: int = 3, dec_dim: int = 128, dec_depth: int = 2, dec_heads: int = 4,
               mask_ratio: float = 0.75):
    super().__init__()
    self.patch, self.grid, self.mask_ratio = patch, size // patch, mask_ratio
    n = self.grid ** 2
    self.embed = nn.Conv2d(3, dim, patch, patch)
    self.cls = nn.Parameter(torch.zeros(1, 1, dim))
    self.register_buffer("pos", sincos_2d(self.grid, dim)[None])
    self.register_buffer("dec_pos", sincos_2d(self.grid, dec_dim)[None])
    self.blocks = nn.Sequential(*[Block(dim, heads, 4 * dim) for _ in range(depth)])
    self.norm = nn.LayerNorm(dim)
    self.dec_embed = nn.Linear(dim, dec_dim)
    self.mask_token = nn.Parameter(torch.zeros(1, 1, dec_dim))
    self.dec_blocks = nn.Sequential(*[Block(dec_dim, dec_heads, 4 * dec_dim)
                                      for _ in range(dec_depth)])
    self.dec_norm = nn.LayerNorm(dec_dim)
    self.pred = nn.Linear(dec_dim, patch * patch * 3)
    self.num_keep = int(n * (1 - mask_ratio))

  def forward(self, images: torch.Tensor) -> torch.Tensor:
    b = images.shape[0]
    tokens = self.embed(images).flatten(2).transpose(1, 2) + self.pos  # [B, N, D]
    n, d = tokens.shape[1], tokens.shape[2]
    order = torch.rand(b, n).argsort(dim=1)
    keep, restore = order[:, :self.num_keep], order.argsort(dim=1)
    visible = torch.gather(tokens, 1, keep[..., None].expand(-1, -1, d))
    x = self.norm(self.blocks(torch.cat([self.cls.expand(b, -1, -1), visible], 1)))
    x = self.dec_embed(x)
    masked = self.mask_token.expand(b, n - self.num_keep, -1)
    full = torch.cat([x[:, 1:], masked], 1)
    full = torch.gather(full, 1, restore[..., None].expand(-1, -1, full.shape[2])) + self.dec_pos
    pred = self.pred(self.dec_norm(self.dec_blocks(torch.cat([x[:, :1], full], 1))))[:, 1:]
    p = self.patch
    target = images.unfold(2, p, p).unfold(3, p, p)  # [B, 3, g, g, p, p]
    target = target.permute(0, 2, 3, 4, 5, 1).reshape(b, n, p * p * 3)
    target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6
                                                         ).sqrt()
    mask = torch.ones(b, n)
    mask[:, :self.num_keep] = 0
    mask = torch.gather(mask, 1, restore)
    return (((pred - target) ** 2).mean(-1) * mask).sum() / mask.sum()


class Bert(nn.Module):
  """BERT (Devlin et al. 2019) MLM + NSP with a tied output layer over gathered positions."""

  def __init__(self, vocab: int = 8192, dim: int = 256, depth: int = 4, heads: int = 4,
               mlp: int = 1024, seq: int = 128, dropout: float = 0.1):
    super().__init__()
    self.tok, self.pos, self.typ = nn.Embedding(vocab, dim), nn.Embedding(seq, dim), \
        nn.Embedding(2, dim)
    self.emb_norm, self.drop = nn.LayerNorm(dim), nn.Dropout(dropout)
    self.blocks = nn.Sequential(*[Block(dim, heads, mlp, dropout) for _ in range(depth)])
    self.norm = nn.LayerNorm(dim)
    self.mlm_transform = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.LayerNorm(dim))
    self.mlm_bias = nn.Parameter(torch.zeros(vocab))
    self.pooler, self.nsp = nn.Linear(dim, dim), nn.Linear(dim, 2)

  def forward(self, ids, types, positions, labels, nsp_labels) -> torch.Tensor:
    pos = torch.arange(ids.shape[1])
    x = self.drop(self.emb_norm(self.tok(ids) + self.pos(pos) + self.typ(types)))
    h = self.norm(self.blocks(x))
    picked = torch.gather(h, 1, positions[..., None].expand(-1, -1, h.shape[2]))
    logits = self.mlm_transform(picked) @ self.tok.weight.T + self.mlm_bias
    mlm = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
    nsp = F.cross_entropy(self.nsp(torch.tanh(self.pooler(h[:, 0]))), nsp_labels)
    return mlm + nsp


# ------------------------------------------------------------------------------ timing


def time_steps(step, warmup: int, steps: int) -> float:
  """Median seconds of `steps` calls of `step()` after `warmup` untimed ones."""
  for _ in range(warmup):
    step()
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def train_bench(args: argparse.Namespace) -> dict:
  """Builds the model, optimizer and random batch of `args.bench` and times its train step."""
  torch.manual_seed(0)
  if args.bench == "simclr_resnet18":
    encoder, head = ResNet18Cifar(), projector((512, 2048, 128))
    model = nn.ModuleList([encoder, head])
    opt = Lars(model.parameters(), lr=0.3 * args.batch / 256)
    views = torch.randn(2, args.batch, 3, 32, 32)

    def loss_fn():
      z = head(encoder(views.reshape(-1, 3, 32, 32)))
      return nt_xent(z[:args.batch], z[args.batch:], 0.2)
  elif args.bench == "mae_vit_tiny":
    model = MAE()
    opt = torch.optim.AdamW(model.parameters(), lr=1.5e-4, betas=(0.9, 0.95), weight_decay=0.05)
    images = torch.randn(args.batch, 3, 32, 32)

    def loss_fn():
      return model(images)
  else:
    model, vocab, seq = Bert(), 8192, args.seq_len
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    ids = torch.randint(5, vocab, (args.batch, seq))
    types = (torch.arange(seq) >= seq // 2).long().expand(args.batch, -1)
    positions = torch.rand(args.batch, seq).argsort(1)[:, :32]
    labels = torch.gather(ids, 1, positions)
    nsp_labels = torch.randint(0, 2, (args.batch,))

    def loss_fn():
      return model(ids, types, positions, labels, nsp_labels)

  model.train()

  def step():
    opt.zero_grad(set_to_none=True)
    loss = loss_fn()
    loss.backward()
    opt.step()

  step_time = time_steps(step, args.warmup, args.steps)
  out = {"bench": args.bench, "framework": "torch", "batch": args.batch,
         "examples_per_sec": args.batch / step_time, "step_time_ms": 1000 * step_time,
         "params": sum(p.numel() for p in model.parameters())}
  if args.bench == "bert_small":
    out["tokens_per_sec"] = args.batch * args.seq_len / step_time
  return out


# --------------------------------------------------------------------------- transform

SPECS = {  # The recipes' augment specs (configs/simclr_mnist.py, configs/simclr_cifar10.py).
    "mnist": dict(scale=(0.4, 1.0), rotation=15.0, rotation_p=0.5, flip_p=0.0, jitter_p=0.8,
                  brightness=0.4, contrast=0.4, saturation=0.0, hue=0.0, grayscale_p=0.0,
                  blur_p=0.3, blur_sigma=(0.1, 1.0), noise_p=0.3, noise_std=0.1,
                  mean=(0.1307,), std=(0.3081,)),
    "cifar": dict(scale=(0.08, 1.0), rotation=0.0, rotation_p=0.0, flip_p=0.5, jitter_p=0.8,
                  brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, grayscale_p=0.2,
                  blur_p=0.0, blur_sigma=(0.1, 2.0), noise_p=0.0, noise_std=0.0,
                  mean=(0.4914, 0.4822, 0.4465), std=(0.2470, 0.2435, 0.2616)),
}


def crop_box(h: int, w: int, scale, ratio=(3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
  """RandomResizedCrop's box (top, left, height, width): area uniform, aspect log-uniform."""
  for _ in range(10):
    area = h * w * random.uniform(*scale)
    aspect = math.exp(random.uniform(math.log(ratio[0]), math.log(ratio[1])))
    cw, ch = round(math.sqrt(area * aspect)), round(math.sqrt(area / aspect))
    if 0 < cw <= w and 0 < ch <= h:
      return random.randint(0, h - ch), random.randint(0, w - cw), ch, cw
  return 0, 0, h, w


def adjust_hue(img: Image.Image, delta: float) -> Image.Image:
  """Shift the hue channel of the HSV image by `delta` turns (torchvision's PIL adjust_hue)."""
  h, s, v = img.convert("HSV").split()
  h = Image.fromarray((np.asarray(h, np.uint8) + np.uint8(int(delta * 255) % 256)), "L")
  return Image.merge("HSV", (h, s, v)).convert("RGB")


def view(img: Image.Image, spec: dict, size: int = 32) -> torch.Tensor:
  """One augmented, normalised view [3, size, size] of a PIL RGB image."""
  top, left, ch, cw = crop_box(img.height, img.width, spec["scale"])
  img = img.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + cw, top + ch))
  if spec["rotation_p"] and random.random() < spec["rotation_p"]:
    img = img.rotate(random.uniform(-spec["rotation"], spec["rotation"]),
                     Image.Resampling.BILINEAR)
  if spec["flip_p"] and random.random() < spec["flip_p"]:
    img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
  if random.random() < spec["jitter_p"]:
    ops = [(ImageEnhance.Brightness, spec["brightness"]), (ImageEnhance.Contrast, spec["contrast"]),
           (ImageEnhance.Color, spec["saturation"]), (None, spec["hue"])]
    random.shuffle(ops)
    for enhance, strength in ops:
      if strength and enhance is None:
        img = adjust_hue(img, random.uniform(-strength, strength))
      elif strength:
        img = enhance(img).enhance(random.uniform(max(0.0, 1 - strength), 1 + strength))
  if spec["grayscale_p"] and random.random() < spec["grayscale_p"]:
    img = img.convert("L").convert("RGB")
  if spec["blur_p"] and random.random() < spec["blur_p"]:
    img = img.filter(ImageFilter.GaussianBlur(random.uniform(*spec["blur_sigma"])))
  x = torch.from_numpy(np.asarray(img, np.float32) / 255).permute(2, 0, 1)
  if spec["noise_p"] and random.random() < spec["noise_p"]:
    x = (x + spec["noise_std"] * torch.randn_like(x)).clamp(0, 1)
  mean = torch.tensor(spec["mean"])[:, None, None]
  return (x - mean) / torch.tensor(spec["std"])[:, None, None]


class TwoViews(torch.utils.data.Dataset):
  """Random uint8 32x32x3 images, each returned as two augmented views."""

  def __init__(self, num_images: int, spec: dict):
    self.images = np.random.default_rng(0).integers(0, 256, (num_images, 32, 32, 3), np.uint8)
    self.spec = spec

  def __len__(self) -> int:
    return len(self.images)

  def __getitem__(self, index: int):
    img = Image.fromarray(self.images[index])
    return view(img, self.spec), view(img, self.spec)


def transform_bench(args: argparse.Namespace) -> dict:
  """Two-view images/s through a DataLoader: `--warmup` batches, then `--batches` timed."""
  loader = torch.utils.data.DataLoader(
      TwoViews(args.images, SPECS[args.spec]), batch_size=args.batch, shuffle=True,
      num_workers=args.workers, drop_last=True, persistent_workers=args.workers > 0)
  batches = iter(_endless(loader))
  for _ in range(args.warmup):
    next(batches)
  start = time.perf_counter()
  for _ in range(args.batches):
    next(batches)
  rate = args.batches * args.batch / (time.perf_counter() - start)
  return {"bench": "transform", "framework": "torch", "spec": args.spec, "batch": args.batch,
          "workers": args.workers, "images_per_sec": rate, "views_per_sec": 2 * rate}


def _endless(loader):
  while True:
    yield from loader


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--bench", required=True,
                      choices=("simclr_resnet18", "mae_vit_tiny", "bert_small", "transform"))
  parser.add_argument("--batch", type=int, default=None,
                      help="default 256 (bert_small: 32)")
  parser.add_argument("--seq-len", type=int, default=128)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--spec", default="mnist", choices=sorted(SPECS))
  parser.add_argument("--workers", type=int, default=2)
  parser.add_argument("--images", type=int, default=4096)
  parser.add_argument("--batches", type=int, default=20)
  args = parser.parse_args()
  if args.batch is None:
    args.batch = 32 if args.bench == "bert_small" else 256
  result = transform_bench(args) if args.bench == "transform" else train_bench(args)
  print(json.dumps({**result, "torch": torch.__version__,
                    "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
  main()
