"""The labelled splits every probe runs on, and frozen features of them.

Offline evaluation (sslax.evaluate) and the evaluations inside training (sslax.evals.online)
read the same splits: for image runs the labelled train and test splits of `config.data` in the
method's first view; for text runs the held-out article task or a labelled TSV/JSONL set
(sslax.evals.text), as token batches.
"""
import dataclasses
import functools
from typing import Any

import jax
import numpy as np

from sslax import parallel
from sslax.data import pipeline, sources, text_corpus
from sslax.evals import text as text_eval


@dataclasses.dataclass(frozen=True)
class Splits:
  """Model inputs (arrays, or dicts of token arrays) and int labels of the probe's two splits;
  text runs also keep the token-id sentences (for bag-of-tokens)."""
  train_x: Any
  train_y: np.ndarray
  test_x: Any
  test_y: np.ndarray
  num_classes: int
  description: str
  train_s: list | None = None
  test_s: list | None = None


def labelled_splits(method: Any, config: Any, workdir: str, cfg: dict[str, Any]) -> Splits:
  if hasattr(method, "pair_eval_data"):  # Image-text methods: their labelled images.
    return method.pair_eval_data(workdir, cfg).splits
  if hasattr(method, "data"):
    return _text_splits(method, config, workdir, cfg)
  view = method.views()[0]
  train_x, train_y = pipeline.eval_arrays(sources.make_source(config.data, "train"), view)
  test_x, test_y = pipeline.eval_arrays(sources.make_source(config.data, "test"), view)
  return Splits(train_x, train_y, test_x, test_y, int(max(train_y.max(), test_y.max())) + 1,
                f"labelled splits of {config.data.get('source', 'the data')}")


def _text_splits(method: Any, config: Any, workdir: str, cfg: dict[str, Any]) -> Splits:
  """The labelled set of eval.probe_data if given, else the held-out article task."""
  corpus = text_corpus.prepare(config.data, workdir, method.tokenizer_kind, config.seed)
  data = cfg.get("probe_data")
  if data:
    train_s, train_y, test_s, test_y, classes = text_eval.labelled_probe(
        corpus.tokenizer, data["train"], data.get("test"))
    description = f"{len(classes)} labels of {data['train']}"
  else:
    train_s, train_y, test_s, test_y = text_eval.article_probe(corpus.heldout)
    description = (f"which of {int(train_y.max()) + 1} held-out articles a sentence "
                   "comes from")
  # Sentences padded to the longest one (+2 specials) rather than the pretraining length: the
  # features are the same (padding is masked) and fine-tuning is cheaper.
  longest = max(len(s) for s in (*train_s, *test_s)) + 2
  seq_len = min(config.data.seq_len, -(-longest // 8) * 8)
  return Splits(method.encode_sentences(train_s, seq_len), train_y,
                method.encode_sentences(test_s, seq_len), test_y,
                int(max(train_y.max(), test_y.max())) + 1, description, train_s, test_s)


@functools.cache
def _jitted_features(method, level: str, mesh):
  """One compiled feature function per (method, level), shared by every call and encoder."""
  return jax.jit(functools.partial(method.features, level=level),
                 out_shardings=parallel.replicated(mesh))


def extract_features(method, params, model_state, inputs: Any, batch_size: int, mesh,
                     level: str = "encoder") -> np.ndarray:
  """Features of `inputs` (images, or a dict of token arrays) at `level` in fixed-size, sharded
  chunks (one compiled shape)."""
  step = parallel.batch_divisor(mesh)
  batch_size = -(-batch_size // step) * step
  fn = _jitted_features(method, level, mesh)
  total = len(jax.tree.leaves(inputs)[0])
  out = []
  for i in range(0, total, batch_size):
    chunk = jax.tree.map(lambda a, i=i: a[i:i + batch_size], inputs)
    n = len(jax.tree.leaves(chunk)[0])
    padded = jax.tree.map(
        lambda a, n=n: np.concatenate([a, np.zeros((batch_size - n, *a.shape[1:]), a.dtype)]),
        chunk)
    x = jax.device_put(padded, parallel.batch_sharding(mesh))
    out.append(np.asarray(fn(params, model_state, x))[:n])
  return np.concatenate(out)
