"""CLIP ViT-B/32 on Conceptual Captions 3M (Sharma et al. 2018): the paper's recipe, scaled to
CC3M's size.

  python -m sslax.train --config=configs/clip_cc3m.py --workdir=gs://BUCKET/clip_cc3m \\
      --config.data.path=/data/cc3m/train.tsv --config.data.heldout_path=/data/cc3m/val.tsv
  python -m sslax.evaluate --workdir=gs://BUCKET/clip_cc3m

Data: the image-text pairs as a TSV (`path<TAB>caption`, paths relative to the file) or JSONL
file (sslax/data/pairs.py), e.g. what img2dataset writes from CC3M's caption/URL lists; about
2.9M of the 3.3M pairs are still downloadable. Images are not verified up front
(`verify_images=False`: opening 3M files takes hours); a corrupt one is skipped when read, and
logged. A TFDS dataset with image and text features works too (`data.source="tfds"`,
`data.name`, `data.text_key`). CC3M has no labels, so evaluation is image<->text retrieval of
the held-out pairs and the held-out loss; zero-shot classification and the kNN/linear probes
run on data with labels (a folder of class subfolders, a label column, or a TFDS ClassLabel).

Settings of Radford et al. 2021 (section 2.5, tables 19-20) for ViT-B/32: a 12-layer 768-wide
ViT with 32x32 patches at 224 px; a 12-layer, 512-wide, 8-head causal text Transformer over at
most 76 tokens + 2 specials, pooled at the end-of-text token; 512-d embeddings; temperature
0.07 learned, clamped at 100; AdamW, lr 5e-4, beta2 0.98, eps 1e-6, weight decay 0.2 (not on
gains and biases), 2,000 warm-up steps then cosine decay; a random square crop of the resized
image as the only augmentation, with CLIP's normalisation constants; 32 epochs. Changed here:
batch 4,096 instead of 32,768 (CC3M is 1/140 of CLIP's 400M pairs), a WordPiece tokenizer of
CLIP's vocabulary size (49,408) trained on the captions instead of CLIP's byte-level BPE.

Not run here: CC3M is not on this machine, which has no accelerator (ViT-B/32 at batch 4,096
needs a TPU slice or a multi-GPU host).
"""
import ml_collections

PAIRS = 2_900_000
EPOCH = PAIRS // 4096


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  del arg
  c = ml_collections.ConfigDict()
  c.method = "clip"
  c.seed = 0
  c.batch_size = 4096
  c.total_steps = 32 * EPOCH
  c.log_every_steps = 100
  c.checkpoint_every_steps = EPOCH
  c.keep_checkpoints = 3
  c.grad_accum_steps = 1  # micro-batches a step (sslax/accumulate.py)
  c.nan_policy = dict(action="stop", max_rollbacks=3)  # or "rollback" (sslax/recovery.py)
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  c.sharding_rules = ()

  c.data = ml_collections.ConfigDict()
  c.data.source = "pairs_file"
  c.data.path = "train.tsv"
  c.data.heldout_path = "val.tsv"
  c.data.verify_images = False
  c.data.channels = 3
  c.data.vocab_size = 49408
  c.data.seq_len = 78
  c.data.tokenizer = ""
  c.data.class_names = ()
  c.data.zeroshot_templates = ()
  c.data.probe_examples = 10_000
  c.data.num_workers = 16
  c.data.augment = dict(size=224, crop_scale=(0.9, 1.0), crop_ratio=(1.0, 1.0), flip_p=0.0,
                        jitter_p=0.0, grayscale_p=0.0,
                        mean=(0.48145466, 0.4578275, 0.40821073),
                        std=(0.26862954, 0.26130258, 0.27577711))

  c.model = ml_collections.ConfigDict()
  c.model.encoder = dict(name="vit_base", patch_size=32, pool="cls", dtype="bfloat16")
  c.model.text = dict(hidden_dim=512, depth=12, num_heads=8, mlp_dim=2048, positions="learned",
                      dropout_rate=0.0, dtype="bfloat16")
  c.clip = dict(embed_dim=512, text_pool="eos", causal_text=True, init_temperature=0.07,
                max_logit_scale=100.0)

  c.optimizer = dict(name="adamw", learning_rate=5e-4, b1=0.9, b2=0.98, eps=1e-6,
                     weight_decay=0.2, warmup_steps=2000, end_lr_fraction=0.0,
                     grad_clip_norm=None)
  c.eval = dict(evaluators=["knn", "linear", "fewshot", "collapse", "zeroshot", "pretext"],
                retrieval_examples=5000, pretext_batches=4)
  return c
