"""Spectral analysis of the real packaged MiniLM-L6 on CLINC150 texts (library and `hf-spectralkd analyze`)."""

import json
import math
import os

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA
from test_spectral import ref_spectrum

from hf_spectralkd import analyze
from hf_spectralkd.cli import main
from hf_spectralkd.loading import packaged_minilm_path

TRAIN = os.path.join(SHARED_DATA, "train.jsonl")


@pytest.fixture(scope="module")
def minilm():
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = packaged_minilm_path()
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=150)
    return model.eval(), AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="module")
def clinc_rows():
    from datasets import load_dataset

    return load_dataset("json", data_files={"train": TRAIN}, split="train").select(range(300))


def test_minilm_analysis_over_clinc150(minilm, clinc_rows, tmp_path):
    model, tokenizer = minilm
    profile = analyze(
        model, clinc_rows, tokenizer=tokenizer, max_samples=300, select=3, output_dir=tmp_path, progress=False
    )
    intensity = profile.intensity
    assert profile.num_samples == 300
    assert intensity.shape == (7,)  # embeddings + 6 blocks
    assert torch.isfinite(intensity).all() and (intensity > 0).all()
    selected = profile.metadata["selected_layers"]
    assert len(selected) == 3 and all(1 <= i <= 6 for i in selected)
    assert selected == sorted(sorted(range(1, 7), key=lambda i: (-float(intensity[i]), i))[:3])
    with open(tmp_path / "spectral_profile.json") as handle:
        data = json.load(handle)
    assert data["num_samples"] == 300 and len(data["spectra"]) == 7 and len(data["spectra"][0]) == 384
    np.testing.assert_allclose(data["intensity"], intensity.numpy(), rtol=1e-6)
    png = (tmp_path / "layer_intensity.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000

    # the streamed profile equals the numpy reference on the same 300 texts (own batching, masked sums added up)
    sums, count = np.zeros((7, 384)), 0.0
    for start in range(0, 300, 100):
        batch = tokenizer(
            clinc_rows["text"][start : start + 100], padding=True, truncation=True, max_length=128, return_tensors="pt"
        )
        with torch.inference_mode():
            hidden = model(**batch, output_hidden_states=True).hidden_states
        mask = batch["attention_mask"].numpy()
        sums += np.stack([ref_spectrum(h.numpy(), mask) for h in hidden]) * mask.sum()
        count += mask.sum()
    np.testing.assert_allclose(intensity.numpy(), (sums / count).mean(axis=1), rtol=1e-4)


def test_analyze_reads_a_seeded_random_sample_not_the_first_rows(minilm, clinc_rows):
    """CLINC150's train file is sorted by intent: max_samples draws the same seeded sample the trainer uses."""
    from hf_spectralkd.sampling import sample_indices

    model, tokenizer = minilm
    picked = sample_indices(len(clinc_rows), 48, seed=3)
    assert (
        picked == sorted(picked) and len(set(picked)) == 48 and picked == sample_indices(len(clinc_rows), 48, seed=3)
    )
    assert len(set(clinc_rows.select(picked)["label"])) > len(set(clinc_rows.select(range(48))["label"]))
    sampled = analyze(model, clinc_rows, tokenizer=tokenizer, max_samples=48, seed=3, progress=False)
    reference = analyze(model, clinc_rows.select(picked), tokenizer=tokenizer, progress=False)
    first = analyze(model, clinc_rows, tokenizer=tokenizer, max_samples=48, shuffle=False, progress=False)
    assert sampled.num_samples == reference.num_samples == first.num_samples == 48
    np.testing.assert_allclose(sampled.intensity.numpy(), reference.intensity.numpy(), rtol=1e-5)
    assert not np.allclose(sampled.intensity.numpy(), first.intensity.numpy(), rtol=1e-4)


def test_analyze_cli_in_process(tmp_path, capsys):
    out = tmp_path / "analysis"
    code = main(
        [
            "analyze",
            "--model",
            "packaged:minilm",
            "--data",
            TRAIN,
            "--max-samples",
            "64",
            "--batch-size",
            "32",
            "--select",
            "3",
            "--strategy",
            "uniform",
            "--output",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    layer_lines = [line for line in printed.splitlines() if line.startswith("layer ")]
    assert len(layer_lines) == 7
    assert [line.endswith("*") for line in layer_lines] == [
        False,
        False,
        True,
        False,
        True,
        False,
        True,
    ]  # uniform: 2, 4, 6
    with open(out / "spectral_profile.json") as handle:
        data = json.load(handle)
    assert data["num_samples"] == 64 and len(data["intensity"]) == 7
    assert all(math.isfinite(v) and v > 0 for v in data["intensity"])
    assert data["metadata"]["selected_layers"] == [2, 4, 6] and data["metadata"]["model"] == "packaged:minilm"
    assert data["metadata"]["shuffle"] is True and data["metadata"]["seed"] == 42  # a seeded sample, not the first 64
    for line, value in zip(layer_lines, data["intensity"], strict=True):
        assert f"{value:.6f}" in line
    assert (out / "layer_intensity.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--model", "packaged:minilm", "--data", "missing/file.jsonl"],
            "the file 'missing/file.jsonl' does not exist",
        ),
        (["--model", "./no/such/model", "--data", TRAIN], "the path './no/such/model' does not exist"),
        (
            ["--model", "packaged:minilm", "--data", TRAIN, "--text-column", "sentence"],
            r"--text-column 'sentence' not found in .*train.jsonl: the columns are \['text', 'label'\]",
        ),
        (
            ["--model", "packaged:minilm", "--data", "clinc_oos"],
            "looks like a Hub dataset id, but the Hub is unreachable .*Pass a local .jsonl/.json/.csv/.parquet file",
        ),
        (
            ["--model", "packaged:minilm", "--data", TRAIN, "--select", "7"],
            r"--select 7: the model has only 6 selectable layers \(1\.\.6\)",
        ),
    ],
)
def test_analyze_cli_errors_before_any_work(tmp_path, capsys, monkeypatch, argv, message):
    import re

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "analysis"
    assert main(["analyze", *argv, "--output", str(out)]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith("hf-spectralkd analyze: error: "), err
    assert re.search(message, errors[0]), err
    assert not out.exists()


def test_analyze_cli_bad_files_and_output_are_one_line_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    malformed = tmp_path / "malformed.jsonl"
    malformed.write_text('{"text": "set a timer", "label": "timer"}\n{"text": "broken\n')
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    a_file = tmp_path / "taken"
    a_file.write_text("not a directory")
    cases = [
        (
            ["--data", str(malformed), "--output", str(tmp_path / "a")],
            r"--data: .*malformed.jsonl, line 2: malformed JSON \(Invalid control character at column 17\)",
        ),
        (
            ["--data", str(empty), "--output", str(tmp_path / "b")],
            r"--data: (could not read '.*empty.jsonl'|'.*empty.jsonl' has no rows)",
        ),
        (["--data", TRAIN, "--output", str(a_file)], r"--output '.*taken' is an existing file, not a directory"),
    ]
    import re

    for argv, message in cases:
        assert main(["analyze", "--model", "packaged:minilm", *argv, "--max-samples", "8"]) == 2
        err = capsys.readouterr().err
        errors = [line for line in err.splitlines() if "error" in line.lower()]
        assert (
            "Traceback" not in err and len(errors) == 1 and errors[0].startswith("hf-spectralkd analyze: error: ")
        ), err
        assert re.search(message, err), err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert a_file.read_text() == "not a directory"


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_analyze_cli_on_local_csv_parquet_with_text_pairs(tmp_path, capsys, fmt):
    """A tiny BERT saved with its own tokenizer, sentence pairs in a CSV / Parquet file."""
    from conftest import tiny_bert
    from datasets import Dataset
    from transformers import BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(40)]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    model_dir = tmp_path / "model"
    BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt")).save_pretrained(model_dir)
    tiny_bert(num_layers=3, hidden=16).save_pretrained(model_dir)
    rows = [{"premise": f"w{i} w{i + 1} w{i + 2}", "hypothesis": f"w{i % 7} w3", "label": i % 3} for i in range(30)]
    data = tmp_path / f"pairs.{fmt}"
    getattr(Dataset.from_list(rows), f"to_{fmt}")(str(data))
    out = tmp_path / "analysis"
    argv = [
        "analyze",
        "--model",
        str(model_dir),
        "--data",
        str(data),
        "--text-column",
        "premise",
        "--text-pair-column",
        "hypothesis",
        "--max-samples",
        "20",
        "--batch-size",
        "8",
        "--select",
        "2",
        "--strategy",
        "ends",
        "--output",
        str(out),
    ]
    assert main(argv) == 0
    with open(out / "spectral_profile.json") as handle:
        data = json.load(handle)
    assert data["num_samples"] == 20 and len(data["intensity"]) == 4 and len(data["spectra"][1]) == 16
    assert len(data["metadata"]["selected_layers"]) == 2
    assert sum(line.endswith("*") for line in capsys.readouterr().out.splitlines()) == 2
    # the missing pair column is named, with the columns that exist
    assert main([*argv[:7], "--text-pair-column", "second", "--output", str(tmp_path / "x")]) == 2
    assert "--text-pair-column 'second' not found" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
