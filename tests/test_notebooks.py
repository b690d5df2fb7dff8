"""The notebooks: stored without outputs, and each runs top to bottom in a fresh kernel (nbclient)
with a tiny setting in its parameter cell, followed by a cell of checks in its namespace."""
import json
import os

import nbformat
import pytest
from nbclient import NotebookClient

REPO = __file__.rsplit("/tests/", 1)[0]
NOTEBOOKS = os.path.join(REPO, "notebooks")
# Every parameter but WORKDIR (a temporary directory), per notebook.
SMALL = {
    "quickstart": dict(TOTAL_STEPS=4, BATCH_SIZE=16, VARIANT=":tiny",
                       EVALUATORS=["knn", "linear"], LINEAR_STEPS=20, MAP_POINTS=64),
    "mae_vit_tpu": dict(TOTAL_STEPS=4, BATCH_SIZE=16, VARIANT=":tiny", EXAMPLES=4),
    "bert_mlm": dict(TOTAL_STEPS=2, BATCH_SIZE=8, VARIANT=":tiny", TOP_K=3),
}
# Run after the notebook, in its namespace.
CHECKS = {
    "quickstart": """
import json
with open(os.path.join(WORKDIR, "eval_results.json")) as f:
  saved = json.load(f)
assert saved["step"] == TOTAL_STEPS and saved["protocol"]["linear_steps"] == LINEAR_STEPS
assert "knn_top1" in saved and "linear_top1" in saved and "fewshot_1shot_top1" not in saved
assert mesh.size == jax.device_count() and set(pictures) >= {"training", "embedding_map"}
""",
    "mae_vit_tpu": """
hidden = np.isnan(masked)
# 4x4 patches of 7x7: the mask ratio hides 12 of the 16 patches of every image.
assert hidden.reshape(len(images), -1).mean(1).tolist() == [0.75] * EXAMPLES
assert np.array_equal(filled[~hidden], images[~hidden])  # Visible patches are the input's.
assert np.array_equal(filled_init[~hidden], images[~hidden])
assert not np.array_equal(filled[hidden], filled_init[hidden])
assert np.isfinite([mse, mse_init]).all()
""",
    "bert_mlm": """
assert len(examples) == 4 + len(held_out) and held_out
for ids, position, truth in examples:
  assert ids[position] == tokenizer.MASK_ID and (ids == tokenizer.MASK_ID).sum() == 1
  guesses = fill_mask(trained["params"], ids, position)
  probs = [p for _, p in guesses]
  assert len(guesses) == TOP_K and probs == sorted(probs, reverse=True) and sum(probs) <= 1
""",
}


def _read(name: str) -> nbformat.NotebookNode:
  return nbformat.read(os.path.join(NOTEBOOKS, f"{name}.ipynb"), as_version=4)


def _parameter_cell(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
  (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
  return cell


@pytest.mark.parametrize("name", sorted(SMALL))
def test_notebook_is_stored_clean_with_one_parameter_cell(name):
  nb = _read(name)
  nbformat.validate(nb)
  code = [c for c in nb.cells if c.cell_type == "code"]
  assert all(not c.outputs and c.execution_count is None for c in code)
  assert 'importlib.util.find_spec("sslax") is None' in code[0].source  # The guarded install.
  params = _parameter_cell(nb).source
  names = {line.split(" = ")[0] for line in params.splitlines() if " = " in line}
  assert names == {*SMALL[name], "WORKDIR"}  # The test's setting covers every parameter.


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SMALL))
def test_notebook_runs_with_a_small_setting(name, tmp_path, monkeypatch):
  nb = _read(name)
  values = {**SMALL[name], "WORKDIR": str(tmp_path / "run")}
  _parameter_cell(nb).source = "\n".join(f"{k} = {v!r}" for k, v in values.items())
  nb.cells.append(nbformat.v4.new_code_cell(CHECKS[name]))
  # The kernel inherits these: the suite's compilation cache, and one OpenMP thread (t-SNE's
  # threads crawl when the cores are shared).
  monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", os.path.join(REPO, ".pytest_cache", "jax"))
  monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
  monkeypatch.setenv("OMP_NUM_THREADS", "1")
  NotebookClient(nb, timeout=300, kernel_name="python3",
                 resources={"metadata": {"path": NOTEBOOKS}}).execute()
  outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
  assert not [o for o in outputs if o.output_type == "error"]
  images = [o for o in outputs if "image/png" in o.get("data", {})]
  assert len(images) == {"quickstart": 2, "mae_vit_tpu": 1, "bert_mlm": 0}[name]
  with open(tmp_path / "run" / "config.json") as f:
    assert json.load(f)["total_steps"] == values["TOTAL_STEPS"]
