"""benchmarks/gpu_check.py --tiny: the GPU check's own code runs on the CPU (so it is ready when a device is lent)."""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gpu_check_tiny_reports_every_figure(tmp_path):
    sys.path.insert(0, ROOT)
    try:
        from benchmarks import gpu_check
    finally:
        sys.path.pop(0)
    out = tmp_path / "gpu_check.json"
    results = gpu_check.main(["--tiny", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(results))
    for method in ("logit_kd", "spectralkd"):
        assert results[method]["steps"] == gpu_check.TINY["steps"] and results[method]["median_ms"] > 0
    ratio = results["spectralkd"]["median_ms"] / results["logit_kd"]["median_ms"]
    assert abs(results["step_time_ratio_spectralkd_over_logit_kd"] - ratio) < 1e-3
    assert results["teacher_cache"]["examples"] == gpu_check.TINY["cache_examples"]
    assert results["teacher_cache"]["examples_per_s"] > 0
    assert results["fsdp_smoke"]["status"] == "skipped" and "CUDA" in results["fsdp_smoke"]["reason"]
    assert results["deepspeed_zero2_smoke"]["status"] in ("skipped", "ok", "failed")
