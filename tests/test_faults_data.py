"""Faults of issue 25 in the data a run reads and what it writes about it (classes 3 and the full disk of class 5),
on a tiny BERT teacher and a 3-intent CLINC150 subset: dataset facts of another data set in the card, CSV label
codes, labels that differ only by case or whitespace, list texts, a budget of 0 steps, test rows copied from
training, carved rows reported as validation, a teacher whose labels are a permutation of the data's, a full
disk while results and the card are written; and the docs' run-directory guarantees."""

import builtins
import errno
import json
import os
import warnings

import pytest
import yaml
from test_faults import _dry_run, _run, _save_classifier, fault_recipe
from test_pipeline import _subset, _write_jsonl

from hf_spectralkd.constants import RESULTS_FILENAME, SUMMARY_FILENAME

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED_RECIPE = os.path.join(ROOT, "recipes", "clinc150_minilm.yaml")
PACKAGED_DATA = os.path.join(ROOT, "hf_spectralkd", "data", "clinc150")
CLINC_WORDS = ("clinc", "Larson", "CC BY 3.0", "oos-eval")


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    """A given 3-label teacher, a data folder (no dataset card) whose test split has 2 exact copies of training
    rows, and a recipe writing to <root>/run."""
    from transformers import AutoTokenizer

    from hf_spectralkd.loading import packaged_minilm_path

    root = tmp_path_factory.mktemp("faults_data")
    tokenizer = AutoTokenizer.from_pretrained(packaged_minilm_path())
    _save_classifier(root / "teacher", tokenizer, seed=0)
    data = root / "data"
    data.mkdir()
    train = _subset("train", 16)
    _write_jsonl(data / "train.jsonl", train)
    _write_jsonl(data / "validation.jsonl", _subset("validation", 4))
    _write_jsonl(data / "test.jsonl", _subset("test", 6) + [train[0], train[20]])  # 2 copies of training rows
    path = root / "recipe.yaml"
    path.write_text(yaml.safe_dump(fault_recipe(root, data, "faults_data")))
    return {"root": root, "recipe": str(path), "data": data, "tokenizer": tokenizer, "teacher": root / "teacher",
            "train": train}


@pytest.fixture(scope="module")
def finished(space):
    """One finished tiny run (its folder is shared by the tests that only read it or rewrite results/card)."""
    out = space["root"] / "run"
    results, lines = _run(space, out)
    return {"out": out, "results": results, "lines": lines}


def _files(folder) -> dict:
    return {os.path.relpath(os.path.join(r, n), folder): open(os.path.join(r, n), "rb").read()
            for r, _, names in os.walk(folder) for n in names}


def _text_data(**section):
    from hf_spectralkd.recipes import DataSection
    from hf_spectralkd.tasks import get_task

    return get_task("text-classification").load_splits(DataSection(**section), need_test="test_file" in section)


# ---------------------------------------------------------------------------------------------- 1. dataset facts
def test_the_shipped_recipe_on_other_data_states_none_of_clinc150s_facts(tmp_path):
    from hf_spectralkd.cards import build_model_card
    from hf_spectralkd.recipes import load_recipe
    from hf_spectralkd.tasks import get_task

    data = tmp_path / "my_intents"
    data.mkdir()
    _write_jsonl(data / "train.jsonl", _subset("train", 4))
    _write_jsonl(data / "test.jsonl", _subset("test", 2))
    task = get_task("text-classification")
    mine = task.load_data(load_recipe(SHIPPED_RECIPE, [f"data.source={data}"])).info
    assert (mine["name"], mine["license"], mine["citation"], mine.get("hub_id")) == ("my_intents", None, None, None)
    packaged = task.load_data(load_recipe(SHIPPED_RECIPE, ["data.max_train_samples=8"])).info
    assert (packaged["name"], packaged["license"], packaged["hub_id"]) == ("clinc150", "CC BY 3.0", "clinc/clinc_oos")
    assert packaged["citation"].startswith("Larson et al., \"An Evaluation Dataset for Intent Classification")

    def card(info):
        student = {"source": "packaged:minilm", "metrics": {"accuracy": 0.5, "macro_f1": 0.4}, "num_layers": 3}
        return str(build_model_card({"task": "text-classification", "eval_split": "test", "dataset": info,
                                     "teacher": {"source": "packaged:minilm", "metrics": {"accuracy": 0.6}},
                                     "student": student}, model_name="m"))

    text = card(mine)
    assert [w for w in CLINC_WORDS if w in text] == [] and "\ndatasets:" not in text, text
    assert "my_intents" in text
    ours = card(packaged)  # the packaged copy keeps its facts, read from its own dataset card
    assert "datasets:\n- clinc/clinc_oos" in ours and "CC BY 3.0" in ours and "Larson et al." in ours


def test_a_card_is_read_only_when_every_file_read_shares_it(tmp_path):
    from hf_spectralkd.tasks.sources import data_card_facts

    carded, bare = tmp_path / "carded", tmp_path / "bare"
    for folder in (carded, bare):
        folder.mkdir()
        _write_jsonl(folder / "train.jsonl", _subset("train", 2))
    (carded / "README.md").write_text("---\nhf_spectralkd:\n  name: mine\n  license: MIT\n---\n# my data\n")
    assert data_card_facts({"train": str(carded / "train.jsonl")}) == {"name": "mine", "license": "MIT"}
    # train from a carded folder, test from another: whose facts? none
    assert data_card_facts({"train": str(carded / "train.jsonl"), "test": str(bare / "train.jsonl")}) == {}
    (bare / "README.md").write_text("---\npretty_name: Bare\nlicense: [cc-by-4.0]\n---\n")  # a Hub dataset card
    assert data_card_facts({"train": str(bare / "train.jsonl")}) == {"name": "Bare", "license": "cc-by-4.0"}
    from hf_spectralkd.cards.values import dataset_hub_id

    assert dataset_hub_id({"name": "clinc150", "source": str(bare)}) is None  # never guessed from a name


def test_an_override_of_the_data_drops_the_recipes_facts_of_its_own_data(tmp_path):
    from hf_spectralkd.recipes import load_recipe

    data = tmp_path / "other"
    data.mkdir()
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"teacher": {"model": "x/y"}, "student": {"num_layers": 2}, "data": {
        "source": str(PACKAGED_DATA), "name": "atis", "license": "LDC", "citation": "Hemphill 1990"}}))
    with pytest.warns(UserWarning, match=r"data.source was overridden: the recipe's data.name, data.license, "
                                         r"data.citation describe its own data and are not used"):
        moved = load_recipe(recipe, [f"data.source={data}"]).data
    assert (moved.name, moved.license, moved.citation) == (None, None, None)
    with pytest.warns(UserWarning, match=r"data.train_file was overridden: the recipe's data.name, data.citation"):
        restated = load_recipe(recipe, [f"data.train_file={data}/t.jsonl", "data.license=MIT"]).data
    assert (restated.name, restated.license, restated.citation) == (None, "MIT", None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kept = load_recipe(recipe, ["data.max_length=32"]).data  # the recipe's own data: its facts stand
    assert (kept.name, kept.license, kept.citation) == ("atis", "LDC", "Hemphill 1990")


def test_a_run_on_uncarded_data_cards_no_other_data_sets_facts(finished):
    card = (finished["out"] / "student" / "README.md").read_text()
    assert [w for w in CLINC_WORDS if w in card] == [], card
    dataset = json.loads((finished["out"] / RESULTS_FILENAME).read_text())["dataset"]
    assert (dataset["name"], dataset["license"], dataset["citation"]) == ("data", None, None)


# ---------------------------------------------------------------------------------------------- 2. labels and texts
def _csv(path, rows):
    path.write_text("text,label\n" + "".join(f"{t},{label}\n" for t, label in rows), encoding="utf-8")


def test_csv_label_codes_are_read_as_written(tmp_path):
    _csv(tmp_path / "train.csv", [("call agent seven", "007"), ("call agent seven again", "007"),
                                  ("set alarm seven", "7"), ("set alarm eight", "8")])
    _csv(tmp_path / "test.csv", [("agent 007 please", "007"), ("seven o'clock", "7")])
    data = _text_data(train_file=str(tmp_path / "train.csv"), test_file=str(tmp_path / "test.csv"))
    assert data.label_names == ["007", "7", "8"]
    assert data.splits["test"]["label"] == [0, 1]  # '007' and '7' stay two classes
    # plain integers (no leading zero) are class ids, in numeric order, as in a JSON file of numbers
    _csv(tmp_path / "ids.csv", [("a", 10), ("b", 2), ("c", 0), ("d", 2)])
    ids = _text_data(train_file=str(tmp_path / "ids.csv"))
    assert ids.label_names == ["0", "2", "10"]


@pytest.mark.parametrize("rows, message", [
    ([("wake me at 7", "alarm"), ("alarm at 8", "alarm"), ("set an alarm", "Alarm"), ("what's the apr", "apr")],
     r"train.csv, column 'label': 1 group\(s\) of labels differ only by case or surrounding whitespace: 'Alarm' "
     r"\(1 row, first row 3\) / 'alarm' \(2 rows, first row 1\)\. As written each would be a class of its own"),
    ([("what's the apr", "apr"), ("apr on my card", "apr "), ("set an alarm", "alarm")],
     r"train.csv, column 'label': 1 group\(s\) .*'apr' \(1 row, first row 1\) / 'apr ' \(1 row, first row 2\)"),
])
def test_labels_that_differ_only_by_case_or_whitespace_are_refused(tmp_path, rows, message):
    _csv(tmp_path / "train.csv", rows)
    with pytest.raises(ValueError, match=message + r".*list every label in data.label_names"):
        _text_data(train_file=str(tmp_path / "train.csv"))
    # listed in data.label_names they are distinct classes, as the user says
    names = sorted({label for _, label in rows})
    assert _text_data(train_file=str(tmp_path / "train.csv"), label_names=names).label_names == names


def test_a_test_label_of_another_case_names_the_training_label(tmp_path):
    _csv(tmp_path / "train.csv", [("wake me", "alarm"), ("what's the apr", "apr")])
    _csv(tmp_path / "test.csv", [("wake me up", "Alarm")])
    with pytest.raises(ValueError, match=r"the test split has 1 label\(s\) that the training split does not have "
                                         r"\('Alarm' \(the training split has 'alarm'\)\)"):
        _text_data(train_file=str(tmp_path / "train.csv"), test_file=str(tmp_path / "test.csv"))


@pytest.mark.parametrize("every_row", [False, True])
def test_a_list_text_is_an_error_naming_file_line_and_column(space, tmp_path, capsys, every_row):
    rows = [dict(r) for r in space["train"]]
    for i, row in enumerate(rows):
        if every_row or i == 2:
            row["text"] = [row["text"], "and a second text"]
    data = tmp_path / "data"
    data.mkdir()
    _write_jsonl(data / "train.jsonl", rows)
    for split in ("validation", "test"):
        (data / f"{split}.jsonl").write_bytes((space["data"] / f"{split}.jsonl").read_bytes())
    code, err = _dry_run(space, tmp_path, capsys, f"data.source={data}")
    line = 1 if every_row else 3
    first = json.dumps(space["train"][line - 1]["text"])
    assert code == 2 and (f"{data / 'train.jsonl'}, line {line}, column 'text': the text is a list ([{first[:20]}"
                          in err), err
    assert "not one string; join it into one text, or put the second text of a pair in its own column" in err


# ---------------------------------------------------------------------------------------------- 3. zero steps
@pytest.mark.parametrize("overrides, message", [
    (["training.max_steps=-1", "training.num_train_epochs=0"],
     "training.num_train_epochs=0 (and no training.max_steps): the student and the baseline would take 0 optimizer "
     "steps and the untrained model would be evaluated and carded as trained. Set training.num_train_epochs > 0 or "
     "training.max_steps >= 1"),
    (["teacher.model=null", "teacher.base={teacher}", "teacher.finetune.epochs=0"],
     "teacher.finetune.epochs=0 (and no teacher.finetune.max_steps): the teacher fine-tuning would take 0 optimizer "
     "steps"),
])
def test_a_budget_of_zero_steps_fails_before_any_work(space, tmp_path, capsys, overrides, message):
    overrides = [o.format(teacher=space["teacher"]) for o in overrides]
    code, err = _dry_run(space, tmp_path, capsys, *overrides)
    assert code == 2 and message in err, err
    with pytest.raises(ValueError, match="would take 0 optimizer steps"):
        _run(space, tmp_path / "run", *overrides)
    assert not (tmp_path / "run").exists()
    # zero epochs with a step budget trains
    code, _ = _dry_run(space, tmp_path, capsys, "training.num_train_epochs=0", "training.max_steps=1")
    assert code == 0


# ---------------------------------------------------------------------------------------------- 4. leakage
def test_test_rows_copied_from_training_are_reported_in_log_results_and_summary(space, finished):
    first = space["train"][0]["text"]
    leakage = finished["results"]["dataset"]["leakage"]
    assert leakage == {"test": {"rows": 2, "of": 20, "examples": [first, space["train"][20]["text"]]}}
    expected = f"leakage: 2 of the 20 test rows are exact copies of training rows (e.g. {first!r}"
    assert any(line.startswith(f"[hf-spectralkd] warning: {expected}") for line in finished["lines"]), \
        finished["lines"][:3]
    assert any(w.startswith(expected) for w in finished["results"]["warnings"])
    summary = (finished["out"] / SUMMARY_FILENAME).read_text()
    assert f"**Warning:** {expected}" in summary


def test_splits_without_copies_give_no_leakage():
    import datasets

    from hf_spectralkd.tasks.sources import data_warnings, training_copies

    splits = datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": ["a", "b"], "pair": ["x", "y"]}),
                                   "test": datasets.Dataset.from_dict({"text": ["a", "c"], "pair": ["y", "x"]})})
    assert training_copies(splits, ("text", "pair")) == {}  # "a" with another pair is not a copy
    found = training_copies(splits, ("text", None))
    assert found == {"test": {"rows": 1, "of": 2, "examples": ["a"]}}
    assert data_warnings({"leakage": found}) == [
        "leakage: 1 of the 2 test rows are exact copies of training rows (e.g. 'a'): on those the test score "
        "measures memory, not generalisation; remove them from the test data or from the training data"]


# ---------------------------------------------------------------------------------------------- 5. carved validation
def test_evaluate_refuses_carved_training_rows_as_validation(space, tmp_path, capsys):
    from hf_spectralkd.cli import main

    data = tmp_path / "no_validation"
    data.mkdir()
    for split in ("train", "test"):
        (data / f"{split}.jsonl").write_bytes((space["data"] / f"{split}.jsonl").read_bytes())
    output = tmp_path / "metrics.json"
    code = main(["evaluate", "--model", str(space["teacher"]), "--data", str(data), "--split", "validation",
                 "--output", str(output)])
    err = capsys.readouterr().err
    assert code == 2 and (f"--data {str(data)!r} has no validation split of its own (no validation file): its "
                          "'validation' rows would be 10 % of the training rows, carved out with seed 42") in err, err
    assert "Nothing was evaluated: pass --split test or --split train" in err and not output.exists()
    assert main(["evaluate", "--model", str(space["teacher"]), "--data", str(space["data"]), "--split",
                 "validation"]) == 0
    assert "on validation (12 examples)" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------- 6. permuted labels
def test_a_teacher_whose_labels_are_a_permutation_is_followed_by_name(space, tmp_path, capsys):
    from transformers import AutoConfig

    from hf_spectralkd.pipeline import preflight
    from hf_spectralkd.recipes import load_recipe

    teacher = tmp_path / "permuted"
    _save_classifier(teacher, space["tokenizer"], seed=0)
    order = ["weather", "timer", "translate"]
    config = AutoConfig.from_pretrained(teacher)
    config.id2label, config.label2id = dict(enumerate(order)), {n: i for i, n in enumerate(order)}
    config.save_pretrained(teacher)
    code, err = _dry_run(space, tmp_path, capsys, f"teacher.model={teacher}")
    assert code == 0, err
    plan = preflight(load_recipe(space["recipe"], [f"teacher.model={teacher}", f"output.dir={tmp_path / 'run'}"]))
    assert plan.label_names == order
    rows = [json.loads(line) for line in (space["data"] / "test.jsonl").read_text().splitlines()]
    test = plan.data.splits["test"]
    assert [order[i] for i in test["label"]] == [r["label"] for r in rows]  # each row keeps its name
    assert any("the data is encoded with the teacher's ids, matched by name (e.g. 'timer' is id 1, not 0)" in n
               for n in plan.data.info["notes"])
    results, lines = _run(space, tmp_path / "run", f"teacher.model={teacher}")
    assert results["dataset"]["label_names"] == order
    assert any("matched by name" in line for line in lines)
    assert json.loads((tmp_path / "run" / "student" / "config.json").read_text())["id2label"] == \
        {"0": "weather", "1": "timer", "2": "translate"}


def test_a_teacher_of_another_label_set_is_still_refused(space, tmp_path):
    from transformers import AutoConfig

    teacher = tmp_path / "other"
    _save_classifier(teacher, space["tokenizer"], seed=0)
    config = AutoConfig.from_pretrained(teacher)
    config.id2label = {0: "weather", 1: "timer", 2: "greeting"}
    config.label2id = {v: k for k, v in config.id2label.items()}
    config.save_pretrained(teacher)
    with pytest.raises(ValueError, match=r"teacher.model's id2label differs from the data's labels .* fine-tuned on "
                                         r"another label set"):
        _run(space, tmp_path / "run", f"teacher.model={teacher}")
    assert not (tmp_path / "run" / "student").exists()


# ---------------------------------------------------------------------------------------------- 8. full disk
def _full_disk(monkeypatch, name):
    """Every atomic write of a file called ``name`` fails with ENOSPC after half its text reached the disk."""
    import hf_spectralkd.utils as utils

    real_open = builtins.open

    class Full:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()
            return False

        def write(self, text):
            self.handle.write(text[: len(text) // 2])
            self.handle.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fake_open(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        base = os.path.basename(os.fspath(path))
        if "w" in mode and base.startswith(f"{name}.") and base.endswith(".tmp"):
            return Full(handle)
        return handle

    monkeypatch.setattr(utils, "open", fake_open, raising=False)


def _tmp_files(folder) -> list:
    return sorted(rel for rel in _files(folder) if rel.endswith(".tmp"))


def test_a_full_disk_while_the_card_is_written_names_it_and_keeps_the_old_card(finished, monkeypatch, capsys):
    from hf_spectralkd.cli import main

    card = finished["out"] / "student" / "README.md"
    card.write_text(card.read_text() + "\n## My own notes\nkept, always.\n")
    before = _files(finished["out"])
    _full_disk(monkeypatch, "README.md")
    assert main(["card", "--run-dir", str(finished["out"])]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (f"hf-spectralkd card: error: could not write {card}: No space left on device; the "
                           "previous file was left as it was"), err
    assert _files(finished["out"]) == before  # the card (with the user's notes) and everything else byte-identical
    assert _tmp_files(finished["out"]) == []


def test_a_full_disk_while_results_are_written_names_the_file_and_keeps_the_old_one(space, finished, monkeypatch,
                                                                                   capsys):
    from hf_spectralkd.cli import main

    out = finished["out"]
    results = out / RESULTS_FILENAME
    before = results.read_bytes()
    _full_disk(monkeypatch, RESULTS_FILENAME)
    code = main(["distill", "--config", space["recipe"], f"output.dir={out}"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().endswith(f"error: could not write {results}: No space left on device; the "
                                              "previous file was left as it was"), err
    assert "Traceback" not in err
    assert results.read_bytes() == before and _tmp_files(out) == []


def test_a_full_disk_on_a_new_file_says_nothing_was_written(tmp_path, monkeypatch):
    from hf_spectralkd.utils import FileWriteError, write_json

    _full_disk(monkeypatch, "new.json")
    with pytest.raises(FileWriteError) as caught:
        write_json(str(tmp_path / "new.json"), {"a": 1})
    assert str(caught.value) == (f"could not write {tmp_path / 'new.json'}: No space left on device; nothing was "
                                 "written")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(tmp_path / "new.json")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------------- 7. the docs
def test_the_docs_name_every_file_a_run_writes_at_its_top_and_every_stage_folder():
    from hf_spectralkd.constants import FINGERPRINT_FILENAME, RUN_MARKER, STAGE_DIRNAMES, STAGE_MARKER
    from hf_spectralkd.pipeline.state import PARTIAL_FILENAME, RUN_FILES

    text = open(os.path.join(ROOT, "docs", "recipes.md"), encoding="utf-8").read()
    start = text.index("## What a run directory guarantees")
    end = text.find("\n## ", start + 1)
    section = text[start: end if end > 0 else None]
    names = [*RUN_FILES, *STAGE_DIRNAMES, RUN_MARKER, STAGE_MARKER, PARTIAL_FILENAME, FINGERPRINT_FILENAME,
             "README.md", ".<stage>.tmp"]
    assert [n for n in names if f"`{n}" not in section] == []
