"""The benchmark scripts' building blocks on tiny models (no wall-time assertions)."""

import os
import sys

import pytest
import torch
from conftest import make_token_rows, pad_collate, tiny_bert

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from benchmarks.common import masked_hidden_mse, student_from_teacher, uniform_layers  # noqa: E402
from benchmarks.speed import BASE_METHODS, STEP_KEYS, cost_growth, time_methods  # noqa: E402


def _batches(n=3, size=4):
    rows = make_token_rows(n * size, seed=3)
    return [pad_collate(rows[i * size : (i + 1) * size]) for i in range(n)]


def test_time_methods_runs_every_method_and_returns_documented_keys(tmp_path):
    teacher = tiny_bert(num_layers=4, hidden=32, seed=0)
    student = student_from_teacher(teacher, [2, 4])
    before = {k: v.clone() for k, v in student.state_dict().items()}
    result = time_methods(
        teacher, student, _batches(), teacher_layers=[2, 4], steps=2, warmup=1, output_dir=str(tmp_path)
    )

    assert set(result) == {"methods", "ratios_to_logit_kd", "steps", "warmup", "teacher_layers", "student_layers"}
    assert list(result["methods"]) == BASE_METHODS
    assert BASE_METHODS[-3:] == ["spectralkd_tokens", "spectralkd_hidden", "spectralkd_tokens+hidden"]
    for name, stats in result["methods"].items():
        assert set(stats) == set(STEP_KEYS), name
        assert stats["steps"] == 2
        assert stats["median_ms"] > 0 and stats["p10_ms"] <= stats["p90_ms"]
        assert stats["samples_per_s"] > 0
    assert result["ratios_to_logit_kd"]["logit_kd"] == pytest.approx(1.0)
    assert result["student_layers"] == [1, 2] and result["teacher_layers"] == [2, 4]
    # every method trained its own copy: the student given in is untouched
    for key, value in student.state_dict().items():
        assert torch.equal(value, before[key]), key
    # the SpectralKD trainers wrote their layer maps (the real trainer ran)
    assert (tmp_path / "spectralkd_tokens" / "layer_map.json").is_file()


def test_time_methods_rejects_unknown_method(tmp_path):
    teacher = tiny_bert(num_layers=2, hidden=16, seed=0)
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        time_methods(
            teacher,
            student_from_teacher(teacher, [2]),
            _batches(1),
            [2],
            methods=["nope"],
            steps=1,
            warmup=0,
            output_dir=str(tmp_path),
        )


def test_student_from_teacher_copies_the_chosen_blocks():
    teacher = tiny_bert(num_layers=4, hidden=32, seed=0)
    student = student_from_teacher(teacher, [1, 4])
    assert student.config.num_hidden_layers == 2 and teacher.config.num_hidden_layers == 4
    t, s = teacher.state_dict(), student.state_dict()
    assert torch.equal(
        s["bert.encoder.layer.0.attention.self.query.weight"], t["bert.encoder.layer.0.attention.self.query.weight"]
    )
    assert torch.equal(s["bert.encoder.layer.1.output.dense.weight"], t["bert.encoder.layer.3.output.dense.weight"])
    assert torch.equal(s["bert.embeddings.word_embeddings.weight"], t["bert.embeddings.word_embeddings.weight"])
    assert torch.equal(s["classifier.weight"], t["classifier.weight"])
    assert uniform_layers(6, 3) == [2, 4, 6]


def test_masked_hidden_mse_matches_reference():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 5, 3, generator=g), torch.randn(2, 5, 3, generator=g)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    keep = mask.bool()
    expected = ((a[keep] - b[keep]) ** 2).mean()
    assert masked_hidden_mse(a, b, mask).item() == pytest.approx(expected.item(), rel=1e-6)
    assert masked_hidden_mse(a, b).item() == pytest.approx(((a - b) ** 2).mean().item(), rel=1e-6)


def test_cost_growth_grid_rows():
    rows = cost_growth(lengths=(4, 8), widths=(8,), batch=2, layers=2, repeats=1)
    assert [(r["seq_len"], r["hidden"]) for r in rows] == [(4, 8), (8, 8)]
    assert rows[0]["intensity_vs_smallest"] == pytest.approx(1.0) and rows[1]["elements_vs_smallest"] == pytest.approx(
        2.0
    )
    assert all(r["intensity_ms"] > 0 and r["freq_loss_fwd_bwd_ms"] > 0 for r in rows)


def test_hidden_mse_baseline_is_the_trainer_with_another_alignment_loss(tmp_path):
    """HiddenMSEDistillationTrainer overrides only alignment_loss: freq_loss is the mean masked MSE of the pairs."""
    from conftest import small_config
    from datasets import Dataset

    from benchmarks.common import HiddenMSEDistillationTrainer

    teacher, student = tiny_bert(num_layers=4, hidden=16, seed=0), tiny_bert(num_layers=2, hidden=16, seed=1)
    trainer = HiddenMSEDistillationTrainer(
        model=student,
        teacher_model=teacher,
        train_dataset=Dataset.from_list(make_token_rows(8)),
        data_collator=pad_collate,
        args=small_config(tmp_path, teacher_layers=[2, 4], spectral_dynamics=False),
    )
    batch = _batches(1)[0]
    model = trainer.model.eval()
    with torch.no_grad():
        trainer.compute_loss(model, batch)
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        s = model(**inputs, output_hidden_states=True).hidden_states
        t = teacher(**inputs, output_hidden_states=True).hidden_states
    expected = torch.stack(
        [masked_hidden_mse(s[a], t[b], batch["attention_mask"]) for a, b in [(1, 2), (2, 4)]]
    ).mean()
    assert float(trainer._metrics["eval"]["freq_loss"][-1]) == pytest.approx(float(expected), rel=1e-5)


def test_cache_benchmark_run_builds_the_cache_through_the_trainer(tmp_path):
    from datasets import Dataset

    from benchmarks.cache_benchmark import _run
    from hf_spectralkd.teacher_cache import add_example_ids

    def collate(rows):
        out = pad_collate(rows)
        out["example_id"] = torch.tensor([r["example_id"] for r in rows])
        return out

    teacher = tiny_bert(num_layers=4, hidden=32, seed=0)
    dataset = add_example_ids(Dataset.from_list(make_token_rows(16)))
    times, build_seconds, logs = _run(
        teacher,
        [2, 4],
        [2, 4],
        dataset,
        collate,
        batch_size=8,
        steps=3,
        out_dir=str(tmp_path / "run"),
        cache_dir=str(tmp_path / "cache"),
    )
    assert len(times) == 2 and build_seconds > 0 and (tmp_path / "cache" / "cache_meta.json").is_file()


def test_regimes_final_table_is_mean_std_and_paired_difference(tmp_path):
    import json

    from benchmarks.regimes import final_table

    def run(method, seed, val, test, f1, seconds=10.0):
        return {"method": method, "seed": seed, "split": "test", "train_seconds": seconds,
                "validation": {"accuracy": val}, "test": {"accuracy": test, "macro_f1": f1}}

    runs = [run("logit_kd", 0, 0.90, 0.80, 0.70), run("logit_kd", 1, 0.92, 0.82, 0.72),
            run("spectralkd", 0, 0.91, 0.83, 0.73, 20.0), run("spectralkd", 1, 0.93, 0.84, 0.74, 30.0),
            dict(run("spectralkd", 2, 0.5, 0.5, 0.5), split="validation")]  # a screening run: not in the table
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"runs": runs}))
    rows = final_table(str(path)).splitlines()
    assert rows[2] == "| logit_kd | 2 | 91.00 ± 1.41 | 81.00 ± 1.41 | 71.00 ± 1.41 | – | 10 |"
    # paired differences: +3 and +2 points -> 2.50 ± 0.71
    assert rows[3] == "| spectralkd | 2 | 92.00 ± 1.41 | 83.50 ± 0.71 | 73.50 ± 0.71 | +2.50 ± 0.71 | 25 |"
