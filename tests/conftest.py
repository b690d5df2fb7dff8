"""Test set-up: 8 simulated CPU devices, a persistent compilation cache, absl flags parsed."""
import os

# LLVM -O0 for the code XLA generates: the tiny test models run a little slower, but each
# compile takes ~40% less time, and compiling is most of the suite's time. (Numerics are the
# same kind either way: XLA:CPU uses no fast-math.) Subprocesses of the tests inherit it.
TEST_XLA_FLAGS = "--xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0"
os.environ.setdefault("XLA_FLAGS", TEST_XLA_FLAGS)

import jax  # noqa: E402
from absl import flags  # noqa: E402

jax.config.update("jax_compilation_cache_dir",
                  os.path.join(os.path.dirname(__file__), "..", ".pytest_cache", "jax"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
# Grain worker processes read absl flags; tests never parse a command line.
flags.FLAGS.mark_as_parsed()
