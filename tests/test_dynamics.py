"""Distillation dynamics: agreement math, the callback (numbers, logs, files, off switch) and `compare`."""

import json
import math
import os

import numpy as np
import pytest
import torch
from conftest import make_token_rows, pad_collate, small_config, tiny_bert
from torch.utils.data import DataLoader

from hf_spectralkd import SpectralDistillationTrainer, collect_profile, frequency_alignment_loss
from hf_spectralkd.constants import DYNAMICS_JSON_FILENAME as DYNAMICS_JSON
from hf_spectralkd.constants import DYNAMICS_PLOT_FILENAME as DYNAMICS_PLOT
from hf_spectralkd.dynamics import (
    SpectralDynamicsCallback,
    curve_agreement,
    mean_relative_error,
    pearson,
    resample_curve,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy shared CPU they only contend."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# the fixture's student has 2 aligned pairs: no pearson_aligned (see test_pearson_needs_four_points)
DYN_KEYS = (
    "eval_dynamics/mre_aligned",
    "eval_dynamics/pearson_all",
    "eval_dynamics/mre_all",
    "eval_dynamics/freq_loss",
)


# ---------------------------------------------------------------------------------------------- agreement math
def test_resample_linear_interpolation():
    assert resample_curve([1.0, 2.0, 3.0, 5.0], 2).tolist() == [1.0, 5.0]  # ends kept
    # 4 points at depths 0, 1/3, 2/3, 1 -> 3 points at 0, 1/2, 1: the middle one halfway between 2 and 3
    assert resample_curve([1.0, 2.0, 3.0, 5.0], 3).tolist() == pytest.approx([1.0, 2.5, 5.0])
    # 2 points -> 5 points: a straight line
    assert resample_curve([0.0, 4.0], 5).tolist() == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0])
    assert resample_curve([1.0, 2.0, 3.0], 3).tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="num_points must be >= 1"):
        resample_curve([1.0, 2.0], 0)


def test_pearson_and_mre_by_hand():
    assert pearson([1.0, 2.0, 4.0], [1.0, 2.0, 4.0]) == pytest.approx(1.0)
    assert pearson([1.0, 2.0, 4.0], [2.0, 4.0, 8.0]) == pytest.approx(1.0)  # scale-free
    assert pearson([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    # x = [1, 2, 3], y = [1, 3, 2]: centred (-1, 0, 1) and (-1, 1, 0) -> 1 / sqrt(2 * 2) = 0.5
    assert pearson([1.0, 2.0, 3.0], [1.0, 3.0, 2.0]) == pytest.approx(0.5)
    assert math.isnan(pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))  # constant curve: undefined
    assert math.isnan(pearson([1.0], [2.0]))
    # |1.1-1|/1 = 0.1, |1.8-2|/2 = 0.1, |4.4-4|/4 = 0.1
    assert mean_relative_error([1.1, 1.8, 4.4], [1.0, 2.0, 4.0]) == pytest.approx(0.1)
    assert mean_relative_error(torch.tensor([2.0, 2.0]), [2.0, 2.0]) == 0.0
    with pytest.raises(ValueError, match="same length"):
        pearson([1.0, 2.0], [1.0, 2.0, 3.0])


def test_curve_agreement_by_hand():
    teacher = [1.0, 2.0, 3.0, 4.0, 6.0]  # 4 blocks
    student = [1.0, 3.0, 6.6]  # 2 blocks
    pairs = [(1, 2), (2, 4)]  # student 1 <-> teacher 2, student 2 <-> teacher 4
    result = curve_agreement(teacher, student, pairs)
    # aligned: student [3, 6.6] vs teacher [3, 6]: two points -> no Pearson (it is +-1 by construction),
    # MRE (0 + 0.1) / 2
    assert math.isnan(result["pearson_aligned"])
    assert result["mre_aligned"] == pytest.approx(0.05)
    # all: the student resampled to 5 depth points: [1, 2, 3, 4.8, 6.6]
    s_all = np.array([1.0, 2.0, 3.0, 4.8, 6.6])
    t_all = np.array(teacher)
    assert result["pearson_all"] == pytest.approx(np.corrcoef(s_all, t_all)[0, 1])
    assert result["mre_all"] == pytest.approx(np.mean(np.abs(s_all - t_all) / t_all))
    identical = curve_agreement(teacher, teacher, [(i, i) for i in range(1, 5)])
    assert identical["pearson_aligned"] == pytest.approx(1.0) and identical["pearson_all"] == pytest.approx(1.0)
    assert identical["mre_aligned"] == 0.0 and identical["mre_all"] == 0.0
    no_pairs = curve_agreement(teacher, student)
    assert math.isnan(no_pairs["pearson_aligned"]) and math.isnan(no_pairs["mre_aligned"])
    with pytest.raises(ValueError, match=r"layer pairs \[\(3, 2\)\] are out of range"):
        curve_agreement(teacher, student, [(3, 2)])


# ---------------------------------------------------------------------------------------------- the callback
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from datasets import Dataset

    tmp_path = tmp_path_factory.mktemp("dynamics")
    teacher, student = tiny_bert(num_layers=4, hidden=32, seed=0), tiny_bert(num_layers=2, hidden=16, seed=1)
    eval_rows = make_token_rows(40, seed=7)
    args = small_config(
        tmp_path,
        max_steps=6,
        eval_strategy="steps",
        eval_steps=2,
        dynamics_samples=12,
        per_device_eval_batch_size=5,
        learning_rate=1e-3,
    )
    trainer = SpectralDistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=args,
        train_dataset=Dataset.from_list(make_token_rows()),
        eval_dataset=Dataset.from_list(eval_rows),
        data_collator=pad_collate,
    )
    trainer.train()
    return trainer, eval_rows


def _callback(trainer):
    found = [cb for cb in trainer.callback_handler.callbacks if isinstance(cb, SpectralDynamicsCallback)]
    assert len(found) == 1
    return found[0]


def _independent_loader(eval_rows, n, seed, batch_size):
    """The fixed sample rebuilt from its definition: `n` indices drawn with torch.randperm(seed), sorted."""
    indices = sorted(torch.randperm(len(eval_rows), generator=torch.Generator().manual_seed(seed))[:n].tolist())
    return DataLoader([eval_rows[i] for i in indices], batch_size=batch_size, shuffle=False, collate_fn=pad_collate)


def test_callback_numbers_equal_collect_profile(trained):
    trainer, eval_rows = trained
    callback = _callback(trainer)
    loader = _independent_loader(eval_rows, 12, trainer.args.seed, 5)
    final = callback.records[-1]
    assert final["step"] == 6  # the model has not changed since the last evaluation
    student_profile = collect_profile(trainer.model, loader)
    teacher_profile = collect_profile(trainer.teacher, loader)
    assert student_profile.num_samples == 12
    assert final["student_intensity"] == pytest.approx(student_profile.intensity.tolist(), rel=1e-6)
    assert callback.teacher_profile.intensity.tolist() == pytest.approx(teacher_profile.intensity.tolist(), rel=1e-6)
    expected = curve_agreement(teacher_profile.intensity, student_profile.intensity, trainer.layer_map.pairs)
    for key, value in expected.items():
        assert final[key] is None if math.isnan(value) else final[key] == pytest.approx(value, rel=1e-5)
    assert final["pearson_aligned"] is None  # 2 pairs
    # freq_loss: per-batch mean over the pairs, weighted by batch size
    total, count = 0.0, 0
    with torch.no_grad():
        trainer.model.eval()
        for batch in loader:
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            s = trainer.model(**inputs, output_hidden_states=True).hidden_states
            t = trainer.teacher(**inputs, output_hidden_states=True).hidden_states
            pair = [frequency_alignment_loss(s[a], t[b], batch["attention_mask"]) for a, b in trainer.layer_map.pairs]
            total += float(torch.stack(pair).mean()) * len(batch["labels"])
            count += len(batch["labels"])
    assert final["freq_loss"] == pytest.approx(total / count, rel=1e-5)
    # the student moved during training: its curve at step 0 differs from the final one
    assert callback.records[0]["step"] == 0
    assert callback.records[0]["student_intensity"] != pytest.approx(final["student_intensity"], rel=1e-7)


def test_log_keys_at_each_evaluation(trained):
    trainer, _ = trained
    history = trainer.state.log_history
    dynamics = [entry for entry in history if any(k.startswith("eval_dynamics/") for k in entry)]
    evaluations = [entry["step"] for entry in history if "eval_loss" in entry]
    assert evaluations == [2, 4, 6]
    # one entry at the start (step 0) and exactly one per evaluation
    assert [entry["step"] for entry in dynamics] == [0, 2, 4, 6]
    n_student = 2
    for entry in dynamics:
        for key in DYN_KEYS + tuple(f"eval_dynamics/student_intensity_l{i}" for i in range(n_student + 1)):
            assert isinstance(entry[key], float) and math.isfinite(entry[key]), key
        assert "eval_dynamics/student_intensity_l3" not in entry
        assert "eval_dynamics/pearson_aligned" not in entry  # 2 pairs: +-1 by construction, not logged
        assert not [k for k in entry if k.startswith("dynamics/")]  # every key carries the eval_ prefix
        assert -1.0 <= entry["eval_dynamics/pearson_all"] <= 1.0
    # the log carries the same numbers as the callback's records
    records = _callback(trainer).records
    assert [entry["eval_dynamics/mre_all"] for entry in dynamics] == [r["mre_all"] for r in records]


def test_report_files_written(trained):
    trainer, _ = trained
    out = trainer.args.output_dir
    with open(os.path.join(out, DYNAMICS_JSON)) as handle:
        report = json.load(handle)
    callback = _callback(trainer)
    assert [m["step"] for m in report["measurements"]] == [0, 2, 4, 6]
    assert [m["event"] for m in report["measurements"]] == ["train_begin", "evaluate", "evaluate", "evaluate"]
    assert report["teacher_intensity"] == pytest.approx(callback.teacher_profile.intensity.tolist())
    assert len(report["teacher_intensity"]) == 5 and len(report["measurements"][0]["student_intensity"]) == 3
    assert report["layer_map"]["teacher_layers"] == trainer.layer_map.teacher_layers
    assert report["layer_map"]["pairs"] == [list(p) for p in trainer.layer_map.pairs]
    assert report["sample"]["num_samples"] == 12
    assert report["callback_seconds"] > 0 and report["callback_seconds"] == pytest.approx(callback.seconds)
    assert report["callback_seconds"] >= sum(m["seconds"] for m in report["measurements"])
    assert report["train_runtime_s"] > 0
    with open(os.path.join(out, DYNAMICS_PLOT), "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_callback_off(tmp_path, bert_pair, token_dataset):
    teacher, student = bert_pair
    args = small_config(tmp_path, max_steps=2, eval_strategy="steps", eval_steps=1, spectral_dynamics=False)
    trainer = SpectralDistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=args,
        train_dataset=token_dataset,
        eval_dataset=token_dataset,
        data_collator=pad_collate,
    )
    assert not [cb for cb in trainer.callback_handler.callbacks if isinstance(cb, SpectralDynamicsCallback)]
    trainer.train()
    assert [e["step"] for e in trainer.state.log_history if "eval_loss" in e] == [1, 2]
    assert not [k for e in trainer.state.log_history for k in e if "dynamics/" in k]
    assert not os.path.exists(os.path.join(args.output_dir, DYNAMICS_JSON))
    assert not os.path.exists(os.path.join(args.output_dir, DYNAMICS_PLOT))


# ---------------------------------------------------------------------------------------------- compare
WORDS = [f"w{i}" for i in range(50)]


def _save_tiny(directory, num_layers, hidden, seed, layer_map=None):
    from transformers import BertTokenizerFast

    vocab = os.path.join(os.path.dirname(directory), "vocab.txt")
    with open(vocab, "w") as handle:
        handle.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=vocab, do_lower_case=True)
    model = tiny_bert(num_layers=num_layers, hidden=hidden, seed=seed)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    if layer_map is not None:
        with open(os.path.join(directory, "layer_map.json"), "w") as handle:
            json.dump(layer_map, handle)
    return model, tokenizer


def test_compare_two_saved_models(tmp_path, capsys):
    from hf_spectralkd import analyze
    from hf_spectralkd.cli import main

    teacher_dir, student_dir = str(tmp_path / "teacher"), str(tmp_path / "student")
    teacher, tokenizer = _save_tiny(teacher_dir, 4, 32, seed=0)
    student, _ = _save_tiny(student_dir, 2, 16, seed=1, layer_map={"teacher_layers": [3, 4], "student_layers": [1, 2]})
    g = torch.Generator().manual_seed(0)
    rows = [
        {"text": " ".join(WORDS[int(i)] for i in torch.randint(0, 50, (int(n),), generator=g)), "label": 0}
        for n in torch.randint(3, 9, (20,), generator=g)
    ]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "cmp"
    code = main(
        [
            "compare",
            "--teacher",
            teacher_dir,
            "--student",
            student_dir,
            "--data",
            str(data),
            "--max-samples",
            "16",
            "--batch-size",
            "4",
            "--output",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    report = json.loads((out / "compare.json").read_text())
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
    # the curves are those of analyze() on the same 16 texts (the trainer's seeded sample, seed 42)
    from datasets import Dataset

    from hf_spectralkd.sampling import sample_indices

    sample = Dataset.from_list(rows).select(sample_indices(len(rows), 16, 42))
    assert sample["text"] != [r["text"] for r in rows[:16]]
    reference_t = analyze(
        teacher, sample, tokenizer=tokenizer, max_samples=16, batch_size=4, progress=False
    ).intensity.tolist()
    reference_s = analyze(
        student, sample, tokenizer=tokenizer, max_samples=16, batch_size=4, progress=False
    ).intensity.tolist()
    assert report["teacher"]["intensity"] == pytest.approx(reference_t, rel=1e-5)
    assert report["student"]["intensity"] == pytest.approx(reference_s, rel=1e-5)
    assert report["num_samples"] == 16 and report["pairs"] == [[1, 3], [2, 4]]
    expected = curve_agreement(report["teacher"]["intensity"], report["student"]["intensity"], [(1, 3), (2, 4)])
    for key, value in expected.items():
        if math.isnan(value):
            assert report["agreement"][key] is None
        else:
            assert report["agreement"][key] == pytest.approx(value, rel=1e-9)
    assert report["agreement"]["pearson_aligned"] is None  # 2 pairs: +-1 by construction
    assert "pearson_aligned: n/a (2 aligned pairs; needs at least 4)" in printed
    # both curves printed side by side, with the agreement numbers
    for index, value in enumerate(reference_t):
        line = next(row for row in printed.splitlines() if row.strip().startswith(f"{index} "))
        assert f"{value:.6f}" in line
        if index < len(reference_s):
            assert f"{reference_s[index]:.6f}" in line
    assert "student 2 <-> teacher 4" in printed
    assert f"pearson_all: {expected['pearson_all']:.4f}" in printed
    # --in-order reads the first 16 rows of the file
    code = main(
        [
            "compare",
            "--teacher",
            teacher_dir,
            "--student",
            student_dir,
            "--data",
            str(data),
            "--max-samples",
            "16",
            "--batch-size",
            "4",
            "--in-order",
            "--output",
            str(out),
        ]
    )
    assert code == 0
    first = analyze(
        teacher, rows[:16], tokenizer=tokenizer, max_samples=16, batch_size=4, progress=False
    ).intensity.tolist()
    assert json.loads((out / "compare.json").read_text())["teacher"]["intensity"] == pytest.approx(first, rel=1e-5)


def test_compare_user_errors(tmp_path, capsys):
    from hf_spectralkd.cli import main

    teacher_dir = str(tmp_path / "teacher")
    _save_tiny(teacher_dir, 2, 16, seed=0)
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"sentence": "w1 w2", "label": 0}) + "\n")
    out = tmp_path / "cmp"
    code = main(
        ["compare", "--teacher", teacher_dir, "--student", teacher_dir, "--data", str(data), "--output", str(out)]
    )
    assert code == 2
    assert "--text-column 'text' not found" in capsys.readouterr().err
    assert not out.exists()  # nothing partial left behind
    code = main(["compare", "--teacher", teacher_dir, "--student", str(tmp_path / "missing"), "--data", str(data)])
    assert code == 2 and "--student" in capsys.readouterr().err
    code = main(
        [
            "compare",
            "--teacher",
            teacher_dir,
            "--student",
            teacher_dir,
            "--data",
            str(data),
            "--layer-map",
            str(tmp_path / "nope.json"),
        ]
    )
    assert code == 2 and "neither a layer_map.json file" in capsys.readouterr().err


def test_callback_on_timm_vision_models(tmp_path):
    """Vision students go through the adapter registry (NCHW feature maps), with a plain list as eval data."""
    import timm

    torch.manual_seed(0)
    kw = dict(img_size=16, patch_size=8, num_classes=3)
    teacher = timm.create_model("vit_tiny_patch16_224", pretrained=False, depth=3, embed_dim=32, num_heads=2, **kw)
    student = timm.create_model("vit_tiny_patch16_224", pretrained=False, depth=2, embed_dim=16, num_heads=2, **kw)
    g = torch.Generator().manual_seed(0)
    rows = [{"pixel_values": torch.randn(3, 16, 16, generator=g), "labels": i % 3} for i in range(24)]

    def collate(batch):
        return {
            "pixel_values": torch.stack([x["pixel_values"] for x in batch]),
            "labels": torch.tensor([x["labels"] for x in batch]),
        }

    args = small_config(
        tmp_path,
        max_steps=2,
        eval_strategy="steps",
        eval_steps=2,
        dynamics_samples=6,
        remove_unused_columns=False,
        label_names=["labels"],
    )
    trainer = SpectralDistillationTrainer(
        model=student, teacher_model=teacher, args=args, train_dataset=rows, eval_dataset=rows, data_collator=collate
    )
    trainer.train()
    dynamics = [e for e in trainer.state.log_history if "eval_dynamics/pearson_all" in e]
    assert [e["step"] for e in dynamics] == [0, 2]
    indices = sorted(torch.randperm(24, generator=torch.Generator().manual_seed(args.seed))[:6].tolist())
    loader = DataLoader([rows[i] for i in indices], batch_size=args.per_device_eval_batch_size, collate_fn=collate)
    expected = collect_profile(trainer.model, loader).intensity.tolist()
    assert len(expected) == 3  # patch embedding + 2 blocks
    assert [dynamics[-1][f"eval_dynamics/student_intensity_l{i}"] for i in range(3)] == pytest.approx(
        expected, rel=1e-6
    )
    assert math.isfinite(dynamics[-1]["eval_dynamics/freq_loss"])
    assert os.path.exists(os.path.join(args.output_dir, DYNAMICS_JSON))


def test_callback_with_teacher_cache_id_column(tmp_path):
    """With the teacher cache the batches carry an example-id column; the callback must not feed it to the models."""
    from datasets import Dataset

    import hf_spectralkd.teacher_cache as tc

    def id_collate(batch):
        out = pad_collate(batch)
        if "example_id" in batch[0]:  # as DataCollatorWithPadding passes any column through
            out["example_id"] = torch.tensor([x["example_id"] for x in batch])
        return out

    train = Dataset.from_list(make_token_rows(24))  # the trainer adds the id column itself
    evaluation = tc.add_example_ids(Dataset.from_list(make_token_rows(16, seed=3)))
    args = small_config(
        tmp_path,
        teacher_layers=[2, 4],
        max_steps=2,
        eval_strategy="steps",
        eval_steps=2,
        prediction_loss_only=True,
        dynamics_samples=8,
    )
    trainer = SpectralDistillationTrainer(
        model=tiny_bert(num_layers=2, hidden=16, seed=1),
        teacher_model=tiny_bert(num_layers=4, hidden=32),
        args=args,
        train_dataset=train,
        eval_dataset=evaluation,
        data_collator=id_collate,
        teacher_cache=str(tmp_path / "cache"),
    )
    trainer.train()
    assert trainer.teacher_cache is not None and len(trainer.teacher_cache) == 24
    dynamics = [e for e in trainer.state.log_history if "eval_dynamics/freq_loss" in e]
    assert [e["step"] for e in dynamics] == [0, 2]
    callback = _callback(trainer)
    sample = callback._sample_dataset()
    batch = next(iter(callback.dataloader()))
    # the ids travel apart from the model inputs (the collator's int64 "example_id"; no adapter passes it on)
    assert batch["example_id"].dtype == torch.long and batch["example_id"].tolist() == sample["example_id"][:8]


# ---------------------------------------------------------------------------------------------- the probe's loss
class _MeanFeatureTrainer(SpectralDistillationTrainer):
    """A subclass distilling with another feature loss (the seam the benchmarks' hidden-MSE baseline uses)."""

    def alignment_loss(self, student_hidden, teacher_hidden, attention_mask):
        return torch.nn.functional.mse_loss(student_hidden.float().mean(-1), teacher_hidden.float().mean(-1))


def _evaluated(tmp_path, trainer_class, **config):
    """One evaluation on one batch (eval_dataset == the dynamics sample == one eval batch): the trainer's own
    eval freq_loss and the dynamics probe's, measured on the same batch in eval mode."""
    from datasets import Dataset

    rows = Dataset.from_list(make_token_rows(8, seed=5))
    args = small_config(tmp_path, teacher_layers=[2, 4], per_device_eval_batch_size=8, dynamics_samples=8, **config)
    trainer = trainer_class(model=tiny_bert(num_layers=2, hidden=16, seed=1), teacher_model=tiny_bert(num_layers=4),
                            args=args, train_dataset=rows, eval_dataset=rows, data_collator=pad_collate)
    metrics = trainer.evaluate()
    return trainer, metrics, rows


@pytest.mark.parametrize("config", [{"freq_bins": 3, "freq_loss_normalize": "teacher_energy"}, {}],
                         ids=["bins-normalized", "default"])
def test_dynamics_freq_loss_is_the_training_freq_loss(tmp_path, config):
    trainer, metrics, rows = _evaluated(tmp_path, SpectralDistillationTrainer, **config)
    assert metrics["eval_dynamics/freq_loss"] == pytest.approx(metrics["eval_freq_loss"], rel=1e-5)
    # the configured term, not the default one: recomputed here by hand with the config's bins / normalisation
    batch = pad_collate(list(rows))
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        s = trainer.model.eval()(**inputs, output_hidden_states=True).hidden_states
        t = trainer.teacher(**inputs, output_hidden_states=True).hidden_states
    pairs = trainer.layer_map.pairs
    mask = batch["attention_mask"]
    configured = torch.stack([frequency_alignment_loss(s[a], t[b], mask, bins=config.get("freq_bins"),
                                                       normalize=config.get("freq_loss_normalize"))
                              for a, b in pairs]).mean()
    default = torch.stack([frequency_alignment_loss(s[a], t[b], mask) for a, b in pairs]).mean()
    assert metrics["eval_dynamics/freq_loss"] == pytest.approx(float(configured), rel=1e-5)
    if config:
        assert float(configured) != pytest.approx(float(default), rel=1e-3)


def test_dynamics_freq_loss_follows_a_subclass_alignment_loss(tmp_path):
    trainer, metrics, rows = _evaluated(tmp_path, _MeanFeatureTrainer)
    assert metrics["eval_dynamics/freq_loss"] == pytest.approx(metrics["eval_freq_loss"], rel=1e-5)
    plain = _evaluated(tmp_path / "plain", SpectralDistillationTrainer)[1]
    assert metrics["eval_dynamics/freq_loss"] != pytest.approx(plain["eval_dynamics/freq_loss"], rel=1e-3)


# ---------------------------------------------------------------------------------------------- issue 26
def test_pearson_needs_four_points():
    """A correlation over k points has k - 2 degrees of freedom: over 2 it is +-1 whatever the curves, over 3 a
    single degree of freedom; curve_agreement reports it from 4 points on (MRE always)."""
    from hf_spectralkd.dynamics import MIN_PEARSON_POINTS

    assert MIN_PEARSON_POINTS == 4
    teacher = [1.0, 2.0, 3.0, 4.0, 6.0]
    student = [1.0, 2.5, 2.0, 5.0, 5.5]
    three = curve_agreement(teacher, student, [(1, 1), (2, 2), (3, 3)])
    assert math.isnan(three["pearson_aligned"]) and three["mre_aligned"] == pytest.approx(
        np.mean([0.25, 1 / 3, 0.25])
    )
    four = curve_agreement(teacher, student, [(1, 1), (2, 2), (3, 3), (4, 4)])
    assert four["pearson_aligned"] == pytest.approx(pearson([2.5, 2.0, 5.0, 5.5], [2.0, 3.0, 4.0, 6.0]))
    # a 2-block teacher and a 1-block student: 3 depth points over all layers, no Pearson either
    short = curve_agreement([1.0, 2.0, 4.0], [1.0, 3.0], [(1, 2)])
    assert math.isnan(short["pearson_all"]) and math.isfinite(short["mre_all"])


def _short_run(tmp_path, **config):
    from datasets import Dataset

    args = small_config(tmp_path, max_steps=4, eval_strategy="steps", eval_steps=2, dynamics_samples=10,
                        learning_rate=1e-3, **config)
    return SpectralDistillationTrainer(
        model=tiny_bert(num_layers=2, hidden=16, seed=1), teacher_model=tiny_bert(num_layers=4, hidden=32, seed=0),
        args=args, train_dataset=Dataset.from_list(make_token_rows(32)),
        eval_dataset=Dataset.from_list(make_token_rows(24, seed=7)), data_collator=pad_collate,
    )


@pytest.mark.parametrize("name", ["dynamics/pearson_all", "eval_dynamics/mre_all"])
def test_dynamics_key_as_metric_for_best_model(tmp_path, name):
    """The keys carry the evaluation's prefix, so the Trainer (which prepends eval_ when missing) finds them."""
    greater = "pearson" in name
    trainer = _short_run(tmp_path, save_strategy="steps", save_steps=2, load_best_model_at_end=True,
                         metric_for_best_model=name, greater_is_better=greater)
    trainer.train()
    key = name if name.startswith("eval_") else f"eval_{name}"
    values = {e["step"]: e[key] for e in trainer.state.log_history if "eval_loss" in e}
    assert sorted(values) == [2, 4]
    best = (max if greater else min)(values.values())
    assert trainer.state.best_metric == pytest.approx(best)
    best_step = next(step for step, value in values.items() if value == best)
    assert trainer.state.best_model_checkpoint.endswith(f"checkpoint-{best_step}")
    # TensorBoard / W&B names: eval/dynamics/..., not train/dynamics/...
    from transformers.integrations.integration_utils import rewrite_logs

    start = next(e for e in trainer.state.log_history if e["step"] == 0 and "eval_dynamics/mre_all" in e)
    assert "eval/dynamics/mre_all" in rewrite_logs({k: v for k, v in start.items() if k != "step"})


def test_dynamics_keys_follow_metric_key_prefix_and_predict(tmp_path):
    trainer = _short_run(tmp_path)
    trainer.train()
    callback = _callback(trainer)
    measured = len(callback.records)
    metrics = trainer.evaluate(metric_key_prefix="dev")
    assert "dev_dynamics/mre_all" in metrics and not [k for k in metrics if k.startswith(("eval_", "dynamics/"))]
    assert metrics["dev_dynamics/mre_all"] == callback.records[-1]["mre_all"]  # same step: not measured again
    # predict(): test_dynamics/... measured on a seeded sample of the predicted data, not the eval sample
    from datasets import Dataset

    rows = make_token_rows(30, seed=11)
    output = trainer.predict(Dataset.from_list(rows))
    assert len(callback.records) == measured  # not part of the training history
    loader = _independent_loader(rows, 10, trainer.args.seed, trainer.args.per_device_eval_batch_size)
    student = collect_profile(trainer.model, loader).intensity.tolist()
    teacher = collect_profile(trainer.teacher, loader).intensity.tolist()
    assert [output.metrics[f"test_dynamics/student_intensity_l{i}"] for i in range(3)] == pytest.approx(
        student, rel=1e-6
    )
    expected = curve_agreement(teacher, student, trainer.layer_map.pairs)
    assert output.metrics["test_dynamics/mre_all"] == pytest.approx(expected["mre_all"], rel=1e-6)
    assert "test_dynamics/freq_loss" in output.metrics


def test_teacher_runs_once_over_the_sample(tmp_path, monkeypatch):
    """The teacher's curve and its paired hidden states are computed once; later measurements run the student
    only (and still give the training freq_loss term, checked by test_dynamics_freq_loss_is_the_training_freq_loss)."""
    from hf_spectralkd import dynamics

    calls = []
    real = dynamics._TeacherRecorder.forward

    def counting(self, model, inputs, *args, **kwargs):
        calls.append(int(inputs["input_ids"].shape[0]))
        return real(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(dynamics._TeacherRecorder, "forward", counting)
    trainer = _short_run(tmp_path)
    trainer.train()
    callback = _callback(trainer)
    assert [r["step"] for r in callback.records] == [0, 2, 4]
    assert sum(calls) == 10  # one pass over the 10 sampled examples, for three measurements
    assert len(callback._fixed.batches) == len(callback._fixed.teacher_hidden) == 2  # eval batch size 8
