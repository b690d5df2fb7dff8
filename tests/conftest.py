"""Test set-up: 8 simulated CPU devices, a persistent compilation cache, absl flags parsed."""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import jax  # noqa: E402
from absl import flags  # noqa: E402

jax.config.update("jax_compilation_cache_dir",
                  os.path.join(os.path.dirname(__file__), "..", ".pytest_cache", "jax"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
# Grain worker processes read absl flags; tests never parse a command line.
flags.FLAGS.mark_as_parsed()
