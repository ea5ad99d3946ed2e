"""benchmarks/dynamics_cost.py runs (tiny random models) and reports the callback's share of the run."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_dynamics_cost_tiny(tmp_path):
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from benchmarks import dynamics_cost

    out = tmp_path / "cost.json"
    result = dynamics_cost.main(["--tiny", "--output", str(out)])
    assert out.exists() and len(result["repeats"]) == 1
    pair = result["repeats"][0]
    assert pair["measurements"] == 2  # step 0 and the one evaluation (the end of training is not stale)
    assert 0 < pair["callback_s"] < pair["wall_on_s"] and 0 < result["median_self_reported"] < 1
