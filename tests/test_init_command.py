"""`hf-spectralkd init --data FILE`: a starter recipe for the user's own CSV / JSONL, columns detected."""

import csv
import json
import random

import pytest

from hf_spectralkd.cli import main
from hf_spectralkd.recipes import load_recipe

WORDS = "book flight hotel rain sun weather play song music cancel order pizza what time alarm set".split()


def _csv(path, rows=60):
    rng = random.Random(0)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "utterance", "intent", "source"])
        for i in range(rows):
            text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9)))
            writer.writerow([i, text, ["travel", "weather", "music"][i % 3], "web"])
    return path


def test_init_writes_a_recipe_that_loads_and_dry_runs(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    data = _csv(tmp_path / "data" / "my intents.csv")
    out = tmp_path / "recipes" / "mine.yaml"
    assert main(["init", "--data", str(data), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"hf-spectralkd distill --config {out}" in printed and "text 'utterance', label 'intent'" in printed
    text = out.read_text()
    assert text.startswith("# Starter recipe written by `hf-spectralkd init`")
    assert "source: ../data/my intents.csv" in text  # relative to the recipe's folder
    recipe = load_recipe(out)
    assert recipe.task == "text-classification" and recipe.teacher.base == "packaged:minilm"
    assert recipe.data.text_column == "utterance" and recipe.data.label_column == "intent"
    assert recipe.data.source == str(data) and recipe.evaluation.split == "validation"
    assert recipe.name == "my_intents"
    capsys.readouterr()
    assert main(["distill", "--config", str(out), "--dry-run"]) == 0
    assert "text_column: utterance" in capsys.readouterr().out


def test_init_refuses_to_overwrite_unless_forced(tmp_path, capsys):
    data = _csv(tmp_path / "d.csv")
    out = tmp_path / "recipe.yaml"
    out.write_text("# mine\n")
    assert main(["init", "--data", str(data), "--output", str(out)]) == 2
    assert "exists: pass --force" in capsys.readouterr().err and out.read_text() == "# mine\n"
    assert main(["init", "--data", str(data), "--output", str(out), "--force"]) == 0
    assert load_recipe(out).data.label_column == "intent"


def test_init_detects_token_classification_jsonl(tmp_path):
    rows = [{"id": i, "tokens": ["fly", "to", city], "tags": ["O", "O", "B-city"]}
            for i, city in enumerate(["boston", "denver", "paris", "rome"] * 5)]
    data = tmp_path / "slots.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "slots.yaml"
    assert main(["init", "--data", str(data), "--output", str(out)]) == 0
    recipe = load_recipe(out)
    assert recipe.task == "token-classification"
    assert recipe.data.tokens_column == "tokens" and recipe.data.tags_column == "tags"


def test_init_column_errors(tmp_path, capsys):
    data = tmp_path / "one.csv"
    data.write_text("text,label\nsame,a\nsame,a\n")
    assert main(["init", "--data", str(data), "--output", str(tmp_path / "r.yaml")]) == 2
    err = capsys.readouterr().err
    assert "no text column found" in err and "text (str, 1 distinct)" in err
    assert main(["init", "--data", str(data), "--output", str(tmp_path / "r.yaml"), "--text-column", "nope"]) == 2
    assert "--text-column 'nope' is not a column" in capsys.readouterr().err
    assert not (tmp_path / "r.yaml").exists()


@pytest.mark.parametrize("words,expected", [(3, 32), (30, 48), (1000, 256)])
def test_max_length_rule(words, expected):
    from hf_spectralkd.commands.init import max_length_for

    assert max_length_for(words) == expected
