"""Evaluations inside training, on the live parameters, logged with the step.

  config.evals = {"knn": dict(type="knn", every_steps=500),
                  "rank": dict(type="collapse", every_steps=100)}

Each entry names an evaluator and how often it runs; the optional keys are that evaluator's
settings (knn: k, temperature; linear: steps, learning_rate, weight_decay; fewshot: shots, l2;
collapse: min_rank_fraction). They run on the same labelled splits and frozen features as
`python -m sslax.evaluate` (sslax.evals.probe_data), so an online number and the offline number
of the same checkpoint agree. Features are extracted once per step for all evaluators due.
Results are metrics named `<entry>/<metric>` in metrics.jsonl and TensorBoard.
"""
from collections.abc import Mapping
from typing import Any

from absl import logging

from sslax.evals import collapse, fewshot, knn, linear, probe_data


def _knn(train_f, train_y, test_f, test_y, num_classes, spec):
  return {"top1": knn.knn_top1(train_f, train_y, test_f, test_y, num_classes,
                               k=spec.get("k", 20), temperature=spec.get("temperature", 0.07))}


def _linear(train_f, train_y, test_f, test_y, num_classes, spec):
  probe = linear.linear_probe(train_f, train_y, test_f, test_y, num_classes,
                              steps=spec.get("steps", 1000),
                              learning_rate=spec.get("learning_rate", 1e-2),
                              weight_decay=spec.get("weight_decay", 1e-4))
  return {"top1": float(probe["test_top1"])}


def _fewshot(train_f, train_y, test_f, test_y, num_classes, spec):
  shots = fewshot.fewshot_top1(train_f, train_y, test_f, test_y, num_classes,
                               shots=spec.get("shots", (1, 5, 10, 25)), l2=spec.get("l2", 1.0))
  return {f"{k}shot_top1": v for k, v in shots.items()}


def _collapse(train_f, train_y, test_f, test_y, num_classes, spec):
  del train_f, train_y, test_y, num_classes
  report = collapse.collapse_report(test_f, spec.get("min_rank_fraction", 0.05))
  return {k: float(v) for k, v in report.items()}


EVALUATORS = {"knn": _knn, "linear": _linear, "fewshot": _fewshot, "collapse": _collapse}


def parse_specs(evals: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
  """config.evals -> {name: spec}; an unknown type or a missing every_steps is an error."""
  specs = {}
  for name, spec in dict(evals or {}).items():
    spec = dict(spec)
    if spec.get("type") not in EVALUATORS:
      raise ValueError(f"config.evals.{name}.type={spec.get('type')!r}; use one of "
                       f"{sorted(EVALUATORS)}")
    every = spec.get("every_steps")
    if not isinstance(every, int) or every <= 0:
      raise ValueError(f"config.evals.{name}.every_steps must be a positive integer, got "
                       f"{every!r}")
    specs[name] = spec
  return specs


class OnlineEvals:
  """The evaluators of config.evals for one run; the labelled splits are read on first use."""

  def __init__(self, method: Any, config: Any, workdir: str, mesh, batch_size: int = 500):
    self.specs = parse_specs(config.get("evals", {}))
    self.method, self.config, self.workdir, self.mesh = method, config, workdir, mesh
    self.batch_size = batch_size
    self._splits = None

  def due(self, step: int) -> list[str]:
    return [name for name, spec in self.specs.items() if step % spec["every_steps"] == 0]

  def __call__(self, state: Any, step: int) -> dict[str, float]:
    """Metrics of every evaluator due at `step`, on the parameters in `state`."""
    names = self.due(step)
    if not names:
      return {}
    if self._splits is None:
      cfg = dict(self.config.get("eval", {}))
      self._splits = probe_data.labelled_splits(self.method, self.config, self.workdir, cfg)
    s = self._splits

    def features(inputs):
      return probe_data.extract_features(self.method, state["params"], state["model_state"],
                                         inputs, self.batch_size, self.mesh)

    train_f, test_f = features(s.train_x), features(s.test_x)
    row = {}
    for name in names:
      spec = self.specs[name]
      out = EVALUATORS[spec["type"]](train_f, s.train_y, test_f, s.test_y, s.num_classes, spec)
      row.update({f"{name}/{k}": float(v) for k, v in out.items()})
      if spec["type"] == "collapse" and out["collapsed"]:
        logging.warning("step %d: the embedding looks collapsed (RankMe %.1f, %.1f%% of the "
                        "largest possible rank).", step, out["rankme"],
                        100 * out["rank_fraction"])
    return row
