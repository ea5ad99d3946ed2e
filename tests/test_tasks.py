"""The task registry as the commands use it: one way to read ``--data`` (``Task.load_rows``), one tokeniser per
task, labelled splits from plain arguments, and the module-level timm Trainer."""

import json

import pytest

from hf_spectralkd.tasks import get_task

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(40)]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _rows(n, offset=0):
    return [{"text": f"w{(i + offset) % 40} w{(3 * i) % 40} w{(7 * i) % 40}", "label": f"intent{i % 3}"}
            for i in range(n)]


@pytest.fixture
def tokenizer(tmp_path):
    from transformers import BertTokenizerFast

    (tmp_path / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    return BertTokenizerFast(vocab_file=str(tmp_path / "vocab.txt"))


@pytest.fixture
def text_data(tmp_path):
    directory = tmp_path / "data"
    directory.mkdir()
    for split, n, offset in (("train", 40, 0), ("validation", 12, 5), ("test", 9, 11)):
        _write_jsonl(directory / f"{split}.jsonl", _rows(n, offset))
    return directory


# ---------------------------------------------------------------------------------------------- load_rows
def test_load_rows_from_a_file_all_rows_or_a_seeded_sample(text_data):
    from hf_spectralkd.sampling import sample_indices

    task = get_task("text-classification")
    path = str(text_data / "train.jsonl")
    everything = task.load_rows(path)
    assert len(everything) == 40 and everything["text"] == [r["text"] for r in _rows(40)]
    # a single file is one split, whatever split says
    assert task.load_rows(path, split="test")["text"] == everything["text"]
    sample = task.load_rows(path, "train", n=10, seed=3)
    assert sample["text"] == [everything["text"][i] for i in sample_indices(40, 10, 3)]
    assert sample["text"] == task.load_rows(path, "train", n=10, seed=3)["text"]  # deterministic
    assert sample["text"] != task.load_rows(path, "train", n=10, seed=4)["text"]
    assert sample["text"] != everything["text"][:10]  # not the first rows of a possibly label-sorted file
    assert task.load_rows(path, "train", n=10, seed=3, in_order=True)["text"] == everything["text"][:10]
    assert len(task.load_rows(path, "train", n=100, seed=3)) == 40


def test_load_rows_from_a_directory_reads_the_split_file(text_data):
    task = get_task("text-classification")
    assert task.load_rows(str(text_data), "validation")["text"] == [r["text"] for r in _rows(12, 5)]
    assert len(task.load_rows(str(text_data), "test", n=4, seed=0)) == 4
    with pytest.raises(ValueError, match=r"--data .*: the directory has no nope.jsonl/.csv/.parquet file"):
        task.load_rows(str(text_data), "nope")


@pytest.mark.parametrize("source, message", [
    ("missing/file.jsonl", r"--data: the file 'missing/file.jsonl' does not exist"),
    ("clinc_oos", r"looks like a Hub dataset id, but the Hub is unreachable"),
])
def test_load_rows_errors_name_the_option(monkeypatch, source, message):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match=message):
        get_task("text-classification").load_rows(source, "train", n=4)


def test_load_rows_of_images_samples_the_split():
    from hf_spectralkd.sampling import sample_indices

    task = get_task("image-classification")
    validation = task.load_rows("sklearn:digits", "validation")
    sample = task.load_rows("sklearn:digits", "validation", n=12, seed=5)
    assert len(validation) == 359 and "image" in sample.column_names
    assert sample["label"] == [validation["label"][i] for i in sample_indices(359, 12, 5)]
    with pytest.raises(ValueError, match=r"--split 'dev' not in sklearn:digits"):
        task.load_rows("sklearn:digits", "dev")


# ---------------------------------------------------------------------------------------------- the one tokeniser
def test_one_tokeniser_for_training_analysis_and_the_teacher_cache(text_data, tokenizer, monkeypatch):
    """tokenize_splits (training), analyze() (spectral analysis) and cache-teacher all tokenise through
    tasks.text.processing.tokenize, and give the same token ids."""
    from conftest import tiny_bert

    import hf_spectralkd.tasks.text.processing as processing
    from hf_spectralkd import analyze
    from hf_spectralkd.commands.cache_teacher import tokenize_split
    from hf_spectralkd.recipes import DataSection
    from hf_spectralkd.tasks.text import tokenize_splits

    calls = []
    real = processing.tokenize

    def spy(dataset, *args, **kwargs):
        calls.append(len(dataset))
        return real(dataset, *args, **kwargs)

    monkeypatch.setattr(processing, "tokenize", spy)
    task = get_task("text-classification")
    rows = task.load_rows(str(text_data / "train.jsonl"))
    expected = [tokenizer(t, truncation=True, max_length=6)["input_ids"] for t in rows["text"]]

    section = DataSection(source=str(text_data), max_length=6)
    data = task.load_split(section, "train")
    trained = task.prepare_splits(data.splits, tokenizer, section)["train"]
    assert trained["input_ids"] == expected and trained["labels"] == data.splits["train"]["label"]
    cached = tokenize_split(tokenizer, rows, "text", max_length=6)
    assert cached["input_ids"] == expected and cached["example_id"] == list(range(40))
    assert "labels" not in cached.column_names
    profile = analyze(tiny_bert(num_layers=2, hidden=16), rows, tokenizer=tokenizer, max_length=6, progress=False)
    assert profile.num_samples == 40
    assert calls == [40, 40, 40]  # one call from each of the three paths
    assert tokenize_splits is processing.tokenize_splits


def test_tokenize_names_a_missing_column(tokenizer):
    from hf_spectralkd.tasks.text import tokenize

    with pytest.raises(ValueError, match=r"--text-pair-column 'second' not found in the data: the columns are \["):
        tokenize([{"text": "w1 w2", "label": 0}], tokenizer, "text", "second")


# ---------------------------------------------------------------------------------------------- plain arguments
def test_load_split_from_plain_arguments(text_data):
    from hf_spectralkd.tasks.sections import data_section

    task = get_task("text-classification")
    section = data_section(str(text_data), "test", max_eval_samples=5)
    data = task.load_split(section, "test", max_samples=5)
    assert list(data.splits) == ["test"] and len(data.splits["test"]) == 5
    assert data.label_names == ["intent0", "intent1", "intent2"]
    # one file: it is the requested split, the labels come from the model
    section = data_section(str(text_data / "test.jsonl"), "test", label_names=["intent0", "intent1", "intent2"])
    assert section.test_file.endswith("test.jsonl") and section.source is None
    assert len(task.load_split(section, "test").splits["test"]) == 9
    with pytest.raises(ValueError, match=r"--data './nowhere' does not exist"):
        data_section("./nowhere", "test")


def test_timm_trainer_is_a_module_level_class():
    from transformers import Trainer

    from hf_spectralkd.tasks.image.trainer import TimmClassifierTrainer

    task = get_task("image-classification")
    assert task.trainer_class() is TimmClassifierTrainer
    assert issubclass(TimmClassifierTrainer, Trainer) and TimmClassifierTrainer.__module__.endswith("image.trainer")


def test_read_layer_map(tmp_path):
    from hf_spectralkd.commands import read_layer_map

    (tmp_path / "layer_map.json").write_text(json.dumps({"teacher_layers": [2, 4], "student_layers": [1, 2],
                                                         "pairs": [[1, 2], [2, 4]]}))
    assert read_layer_map("--layer-map", str(tmp_path)).pairs == [(1, 2), (2, 4)]
    (tmp_path / "odd.json").write_text(json.dumps({"teacher_layers": [2, 4], "student_layers": [1]}))
    with pytest.raises(ValueError, match=r"--layer-map: .*odd.json is not a layer map .*equal length"):
        read_layer_map("--layer-map", str(tmp_path / "odd.json"))
    with pytest.raises(ValueError, match="neither a layer_map.json file nor a directory"):
        read_layer_map("--layer-map", str(tmp_path / "nope.json"))
