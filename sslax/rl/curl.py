"""CURL (Laskin, Srinivas & Abbeel 2020): contrastive features beside a reinforcement-learning loss.

Two random crops of the same observation stack are the query and the key; the key goes through
a momentum (EMA) copy of the encoder; a bilinear similarity `q^T W k` scores every query against
every key of the batch, and cross-entropy picks out the matching key (the diagonal).
"""
import jax
import jax.numpy as jnp


def random_shift(key: jax.Array, images: jax.Array, pad: int) -> jax.Array:
  """Pad-and-crop: each image `[B, H, W, C]` padded with `pad` zeros on every side, then cut back
  to `H x W` at an offset drawn uniformly from `{0..2 pad}^2`, per image.

  CURL crops 84x84 out of 100x100 renders; MinAtar's 10x10 frames leave nothing to crop away,
  so the crop is taken from a zero-padded frame (a random shift of up to `pad` cells, DrQ's
  augmentation on a grid; zeros mean "no object here" in every MinAtar channel).
  """
  b, h, w, c = images.shape
  padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  offsets = jax.random.randint(key, (b, 2), 0, 2 * pad + 1)

  def crop(image: jax.Array, offset: jax.Array) -> jax.Array:
    return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, c))

  return jax.vmap(crop)(padded, offsets)


def curl_logits(query: jax.Array, keys: jax.Array, w: jax.Array) -> jax.Array:
  """`[B, B]` scores `q_i^T W k_j`, each row shifted by its maximum (CURL's stabilisation); the
  keys carry no gradient (the key encoder is an EMA, not trained)."""
  logits = query @ w @ jax.lax.stop_gradient(keys).T
  return logits - jnp.max(logits, axis=1, keepdims=True)


def curl_loss(query: jax.Array, keys: jax.Array, w: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(mean cross-entropy with the diagonal as the positives, top-1 accuracy of that choice) for
  queries and keys `[B, D]` and the bilinear matrix `W [D, D]`."""
  logits = curl_logits(query, keys, w)
  labels = jnp.arange(logits.shape[0])
  log_probs = jax.nn.log_softmax(logits, axis=1)
  loss = -jnp.mean(log_probs[labels, labels])
  return loss, jnp.mean(jnp.argmax(logits, axis=1) == labels)
