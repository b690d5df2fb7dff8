"""Grain pipelines: records -> augmented views -> per-process batches.

Every batch is a pure function of (seed, step): the order is a seeded shuffle reshuffled each
epoch, and each record's augmentation draws from a generator seeded by (seed, position in the
endless epoch-after-epoch stream), i.e. by record, epoch and seed. So any batch can be rebuilt,
and a restored iterator continues with exactly the batch an uninterrupted run would have seen.
"""
from collections.abc import Mapping, Sequence
from typing import Any

import grain
import jax
import numpy as np

from sslax import host_memory
from sslax.data import image_ops


class MakeViews(grain.transforms.RandomMap):
  """A record -> {"views": (view_0, ..., view_{n-1})}, one augmentation spec per view.

  The training stream runs it in two halves, `draw` per record (crop and random draws, from the
  record's generator) and `finish` per batch (the pixel ops, batched: image_ops.finish_views),
  which gives the same views as `random_map` record by record, bit for bit.
  """

  def __init__(self, view_specs: Sequence[Any]):
    self.view_specs = [dict(spec) for spec in view_specs]

  def draw(self, record: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    image = image_ops.to_float(record["image"])
    return {"drawn": tuple(image_ops.draw_view(image, rng, spec) for spec in self.view_specs)}

  def finish(self, batch: dict[str, Any]) -> dict[str, Any]:
    return {"views": tuple(image_ops.finish_views(drawn, spec)
                           for drawn, spec in zip(batch["drawn"], self.view_specs, strict=True))}

  def random_map(self, record: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    one = jax.tree.map(lambda x: np.asarray(x)[None], self.draw(record, rng))
    return jax.tree.map(lambda x: x[0], self.finish(one))


def multi_crop_specs(base: Mapping[str, Any], global_views: Sequence[Mapping[str, Any]],
                     local_view: Mapping[str, Any] | None = None,
                     num_local_views: int = 0) -> list[dict[str, Any]]:
  """View specs for multi-crop (Caron et al. 2020): globals first, then `num_local_views` locals.

  Each global view is `base` updated by its own overrides (BYOL/DINO's asymmetric blur 1.0/0.1
  and solarize 0/0.2); each local view is `base` updated by `local_view` (a smaller `size` and
  `crop_scale`). Teachers look at the first len(global_views) views only.
  """
  specs = [{**dict(base), **dict(view)} for view in global_views]
  if num_local_views:
    if local_view is None:
      raise ValueError(f"num_local_views={num_local_views} needs a local_view spec")
    specs += [{**dict(base), **dict(local_view)}] * num_local_views
  return specs


def example_transform(views: Sequence[Any] | grain.transforms.RandomMap
                      ) -> grain.transforms.RandomMap:
  """A method's `views()`: image augmentation specs (one per view), or its own record -> example
  transform (text methods tokenise, mask and pair sentences this way)."""
  return views if isinstance(views, grain.transforms.RandomMap) else MakeViews(views)


def train_dataset(source: Sequence[dict[str, Any]],
                  view_specs: Sequence[Any] | grain.transforms.RandomMap, global_batch: int,
                  seed: int, process_index: int | None = None,
                  process_count: int | None = None) -> grain.MapDataset:
  """The endless stream of this process's batches (`view_specs`: see example_transform).

  The stream of examples is batched in chunks of `global_batch / process_count`; process p takes
  chunks p, p + P, p + 2P, ..., so the processes' chunks of a step, concatenated in process
  order, are exactly the global batch a single process would build.
  """
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  if global_batch % process_count:
    raise ValueError(f"batch_size={global_batch} does not split over {process_count} processes")
  if len(source) == 0:
    raise ValueError("the training source has no records")
  transform = example_transform(view_specs)
  two_halves = isinstance(transform, MakeViews)
  dataset = (grain.MapDataset.source(source).seed(seed).shuffle().repeat(None)
             .random_map(transform.draw if two_halves else transform)
             .batch(global_batch // process_count, drop_remainder=True))
  if two_halves:
    dataset = dataset.map(transform.finish)
  return dataset[process_index::process_count]


def keep_freed_memory(worker_index: int = 0, worker_count: int = 1) -> None:
  """Grain worker start-up: glibc keeps freed blocks up to 32 MiB for reuse (sslax/host_memory.py);
  the worker's heap then stays at its peak (tens of MB). No-op without glibc."""
  del worker_index, worker_count  # Grain's worker_init_fn signature.
  host_memory.keep_freed_small_blocks()


def make_iterator(dataset: grain.MapDataset, num_workers: int = 0,
                  prefetch: int = 2) -> grain.DatasetIterator:
  """An iterator with get_state()/set_state(); `num_workers` > 0 augments in worker processes."""
  stream = dataset.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=prefetch))
  if num_workers > 0:
    stream = stream.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers),
                                worker_init_fn=keep_freed_memory)
  return iter(stream)


def sample_batch(source: Sequence[dict[str, Any]],
                 view_specs: Sequence[Any] | grain.transforms.RandomMap) -> Any:
  """A batch of two examples with the shapes and dtypes of the training batches (for init)."""
  views = example_transform(view_specs).random_map(source[0], np.random.default_rng(0))
  return jax.tree.map(lambda x: np.stack([x, x]), views)


def eval_arrays(source: Sequence[dict[str, Any]], spec: Any) -> tuple[np.ndarray, np.ndarray]:
  """Every record of a labelled source as deterministic evaluation views and labels."""
  images = [image_ops.eval_view(image_ops.to_float(source[i]["image"]), spec)
            for i in range(len(source))]
  labels = [int(source[i]["label"]) for i in range(len(source))]
  return np.stack(images), np.asarray(labels, np.int32)
