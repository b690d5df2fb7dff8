"""The settings the recommendation recipes (configs/sasrec_ml100k.py, configs/cl4srec_ml100k.py)
share: MovieLens-100k leave-one-out data, the SASRec encoder, optimizer, ranking evaluation and
the `:tiny` variant; each config sets the contrastive weight."""
import ml_collections


def base_config(contrastive_weight: float, variant: str | None = None
                ) -> ml_collections.ConfigDict:
  """A SASRec run with `contrastive_weight` x CL4SRec's NT-Xent (0: plain SASRec); `variant`
  "tiny" shrinks it for tests."""
  if variant not in (None, "", "tiny"):
    raise ValueError(f"unknown variant {variant!r}; use none or 'tiny'")
  c = ml_collections.ConfigDict()
  c.method = "sasrec"
  c.seed = 0
  c.batch_size = 128
  c.total_steps = 800
  c.log_every_steps = 100
  c.checkpoint_every_steps = 400
  c.keep_checkpoints = 2
  c.grad_accum_steps = 1
  c.nan_policy = dict(action="stop", max_rollbacks=3)
  c.mesh = {"data": -1, "fsdp": 1, "tensor": 1}
  c.sharding_rules = ()

  c.data = ml_collections.ConfigDict()
  c.data.source = "ml100k_embedded"  # Or "file": data.path, data.columns, data.delimiter.
  c.data.path = ""
  c.data.columns = dict(user="user_id", item="item_id", time="timestamp")
  c.data.delimiter = ""  # Empty: tab for .tsv/.inter files, else comma.
  c.data.header = True
  c.data.min_user_interactions = 1
  c.data.min_item_interactions = 1
  c.data.max_len = 50  # SASRec's ml-1m setting is 200; 50 is its choice for sparser data.
  c.data.num_workers = 0

  c.model = ml_collections.ConfigDict()
  c.model.text = dict(hidden_dim=64, depth=2, num_heads=1, mlp_dim=128, dropout_rate=0.2,
                      dtype="float32")
  # CL4SRec: eta (crop), gamma (mask), beta (reorder) rates, NT-Xent temperature, lambda.
  c.sasrec = dict(contrastive_weight=contrastive_weight, temperature=0.5, crop_eta=0.6,
                  mask_gamma=0.3, reorder_beta=0.6)
  c.optimizer = dict(name="adamw", learning_rate=1e-3, b1=0.9, b2=0.98, weight_decay=0.0,
                     warmup_steps=50, end_lr_fraction=0.0, grad_clip_norm=None)
  c.eval = dict(evaluators=["ranking"], ranking_ks=[5, 10, 20], batch_size=256)

  if variant == "tiny":
    c.batch_size = 16
    c.total_steps = 4
    c.log_every_steps = 1
    c.checkpoint_every_steps = 2
    c.data.max_len = 8
    c.model.text = dict(hidden_dim=16, depth=1, num_heads=2, mlp_dim=32, dropout_rate=0.1,
                        dtype="float32")
    c.optimizer.warmup_steps = 2
  return c
