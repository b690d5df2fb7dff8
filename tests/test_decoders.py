"""Tests for sslax.models.decoders: shapes, the zero-initialised output, per-example logits."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslax.models.decoders import ConvDecoder, PairDiscriminator, make_decoder, upsample2


def _normal(shape, seed=0):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape, dtype=np.float32))


@pytest.mark.parametrize("shape,widths", [((28, 28, 1), (8, 6, 4)), ((32, 32, 3), (8, 6, 4, 4))])
def test_decoder_maps_vectors_to_images_of_the_target_shape(shape, widths):
  decoder = ConvDecoder(widths=widths)
  z = _normal((4, 10))
  variables = decoder.init(jax.random.key(0), z, shape, train=False)
  out, _ = decoder.apply(variables, z, shape, train=True, mutable=["batch_stats"])
  assert out.shape == (4, *shape) and out.dtype == jnp.float32
  # Coarsest grid: the target divided by 2 per upsampling stage.
  coarse = shape[0] // 2 ** (len(widths) - 1)
  assert variables["params"]["input_dense"]["kernel"].shape == (10, coarse * coarse * widths[0])
  # The zero-initialised output conv starts the decoder at the mean image.
  np.testing.assert_array_equal(out, 0.0)


def test_decoder_output_activation_and_size_check():
  decoder = make_decoder({"widths": (4, 4), "output_activation": "tanh"})
  z = _normal((2, 3))
  variables = decoder.init(jax.random.key(0), z, (8, 8, 1), train=False)
  params = jax.tree.map(lambda p: p + 3.0, variables["params"])  # Saturate the tanh.
  out = decoder.apply({**variables, "params": params}, z, (8, 8, 1), train=False)
  assert np.all(np.abs(out) <= 1.0) and np.max(np.abs(out)) > 0.9
  with pytest.raises(ValueError, match="divisible by 2"):
    decoder.init(jax.random.key(0), z, (7, 8, 1), train=False)


def test_upsample2_repeats_every_pixel_into_a_2x2_block():
  x = _normal((2, 3, 5, 4))
  expected = np.repeat(np.repeat(np.asarray(x), 2, axis=1), 2, axis=2)
  np.testing.assert_array_equal(upsample2(x), expected)


def test_discriminator_gives_one_logit_per_pair_that_depends_on_that_pair_only():
  disc = PairDiscriminator(image_widths=(4, 8), latent_dims=(6,), joint_dims=(8,))
  images, latents = _normal((6, 28, 28, 1), 1), _normal((6, 5), 2)
  variables = disc.init(jax.random.key(0), images, latents)
  logits = disc.apply(variables, images, latents)
  assert logits.shape == (6,)
  # No normalisation: changing the other pairs of the batch leaves a pair's logit unchanged.
  others = disc.apply(variables, images.at[1:].set(0.0), latents.at[1:].mul(-3.0))
  np.testing.assert_allclose(others[0], logits[0], rtol=1e-6)
  assert not np.allclose(others[1:], logits[1:])
  # Both branches reach the logit.
  assert not np.allclose(disc.apply(variables, images, latents + 1.0), logits)
  assert not np.allclose(disc.apply(variables, images + 1.0, latents), logits)
