"""The benchmark scripts keep working: gpu_step.py's --smoke mode end to end on CPU, pipeline.py's
measurement on the real Grain pipeline, side_by_side.py's argument checks, matmul_peak.py's
--shapes output."""
import json
import os
import subprocess
import sys

import pytest

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "benchmarks")
CACHE = os.path.join(BENCHMARKS, "..", ".pytest_cache", "jax")
sys.path.insert(0, BENCHMARKS)

import pipeline as pipeline_bench  # noqa: E402

from sslax import config as config_lib  # noqa: E402


@pytest.mark.slow
def test_gpu_step_smoke():
  # One device, as on the GPU; -O0 and the compilation cache of the other tests (conftest.py).
  env = {**os.environ, "XLA_FLAGS": "--xla_backend_optimization_level=0",
         "JAX_COMPILATION_CACHE_DIR": CACHE,
         "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0.5"}
  done = subprocess.run([sys.executable, os.path.join(BENCHMARKS, "gpu_step.py"), "--smoke",
                         "--peak=1e12"], capture_output=True, text=True, env=env, check=True)
  rows = {row["method"]: row for row in map(json.loads, done.stdout.splitlines())}
  assert set(rows) == {"mae", "dino"}
  assert rows["dino"]["views"] == [32, 32, 16, 16]  # 2 global + 2 local crops in smoke mode.
  for row in rows.values():
    assert row["smoke"] and row["dtype"] == "bfloat16" and row["examples_per_sec"] > 0
    assert row["model_flops_per_example"] == 3 * row["forward_flops_per_example"] > 0
    assert row["xla_flops_per_example"] > 0
    assert row["mfu"] == pytest.approx(row["achieved_flops_per_sec"] / (1e12 * row["devices"]))
  # MAE differentiates everything but the input: a little under 3 x forward. DINO's teacher runs
  # forward only, so its traced step is well under 3 x forward.
  mae, dino = rows["mae"], rows["dino"]
  assert 2.5 * mae["forward_flops_per_example"] < mae["step_flops_per_example"]
  assert mae["step_flops_per_example"] < mae["model_flops_per_example"]
  assert dino["step_flops_per_example"] < 0.9 * dino["model_flops_per_example"]


def test_pipeline_bench_uses_the_recipes_specs_on_the_real_pipeline():
  spec = pipeline_bench.view_spec("mnist", 32)
  recipe = dict(config_lib.load_config(
      os.path.join(BENCHMARKS, "..", "configs", "simclr_mnist.py")).data.augment)
  assert spec == {**recipe, "size": 32} and recipe["size"] == 28
  assert pipeline_bench.view_spec("cifar", 32)["hue"] > 0 == spec["hue"]
  source = pipeline_bench.make_source("random", 64)
  assert source[0]["image"].shape == (32, 32, 3)
  assert pipeline_bench.images_per_sec(source, spec, batch=8, num_workers=0, warmup=1,
                                       batches=2) > 0


def test_side_by_side_rejects_unknown_benches():
  done = subprocess.run([sys.executable, os.path.join(BENCHMARKS, "side_by_side.py"),
                         "--benches=mae_vit_tiny,resnet9"], capture_output=True, text=True)
  assert done.returncode != 0 and "unknown ['resnet9']" in done.stderr


def test_matmul_peak_times_each_shapes_three_gemms():
  done = subprocess.run([sys.executable, os.path.join(BENCHMARKS, "matmul_peak.py"),
                         "--shapes=8x4x2,3x5x7", "--repeats=1"], capture_output=True, text=True,
                        check=True)
  rows = [json.loads(line) for line in done.stdout.splitlines()]
  assert [row["shape"] for row in rows] == ["8x4x2", "3x5x7"]
  for row in rows:
    rates = [row[f"{name}_gflops_per_sec"] for name in ("forward", "weight_grad", "input_grad")]
    assert all(rate > 0 for rate in rates)
