"""metrics.jsonl on resume: rows after the restored step go, a line cut off mid-write too."""
import json

from sslax import metrics


def test_truncate_after_keeps_rows_up_to_the_step_and_drops_a_torn_line(tmp_path):
  path = tmp_path / "metrics.jsonl"
  rows = [json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in range(1, 6)]
  path.write_text("".join(rows) + '{"step": 6, "lo')  # The machine lost power mid-append.
  metrics.truncate_after(str(path), 3)
  assert path.read_text() == "".join(rows[:3])
  assert [r["step"] for r in metrics.read_metrics(str(tmp_path))] == [1, 2, 3]
  assert not (tmp_path / "metrics.jsonl.tmp").exists()
