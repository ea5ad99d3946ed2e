"""Recipe loading and validation: sections, types, "1e-4", relative paths, overrides, smoke, shipped recipes."""

import os

import pytest
import yaml

from hf_spectralkd.recipes import load_recipe, parse_overrides, smoke

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = os.path.join(ROOT, "recipes")

MINIMAL = {
    "name": "tiny",
    "teacher": {"base": "./teacher_dir", "finetune": {"epochs": 1, "learning_rate": "1e-4"}},
    "student": {"init": "teacher_layers", "num_layers": 2},
    "data": {"train_file": "data/train.jsonl", "test_file": "data/test.jsonl"},
    "distillation": {"beta": 0.1},
    "training": {"learning_rate": "3e-5", "num_train_epochs": 1},
}


def write_recipe(tmp_path, data, name="recipe.yaml"):
    folder = tmp_path / "recipes"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def with_changes(**sections):
    data = yaml.safe_load(yaml.safe_dump(MINIMAL))
    for section, values in sections.items():
        if isinstance(values, dict) and isinstance(data.get(section), dict):
            data[section].update(values)
        else:
            data[section] = values
    return data


@pytest.mark.parametrize("name", ["clinc150_minilm.yaml", "roberta_large_intent.yaml", "distilroberta_student.yaml"])
def test_shipped_recipes_validate(name):
    recipe = load_recipe(os.path.join(RECIPES, name))
    assert recipe.name == os.path.splitext(name)[0]
    assert recipe.task == "text-classification"
    assert isinstance(recipe.training["learning_rate"], float)


def test_default_recipe_is_offline_and_points_at_the_shipped_data():
    recipe = load_recipe(os.path.join(RECIPES, "clinc150_minilm.yaml"))
    assert recipe.teacher.base == "packaged:minilm"
    assert recipe.data.source == os.path.join(ROOT, "hf_spectralkd", "data", "clinc150")
    assert os.path.isfile(os.path.join(recipe.data.source, "train.jsonl"))
    assert recipe.student.num_layers == 3 and recipe.student.init_layers == "uniform"
    assert recipe.distillation["layer_selection"] == "topk"
    assert recipe.evaluation.baseline is True and recipe.evaluation.split == "test"
    assert recipe.output_dir == "runs/clinc150_minilm"


def test_sci_notation_strings_become_floats_and_paths_resolve_against_the_recipe(tmp_path):
    path = write_recipe(tmp_path, MINIMAL)
    recipe = load_recipe(path)
    assert recipe.teacher.finetune.learning_rate == pytest.approx(1e-4)
    assert recipe.training["learning_rate"] == pytest.approx(3e-5)
    folder = os.path.dirname(path)
    assert recipe.data.train_file == os.path.join(folder, "data", "train.jsonl")
    assert recipe.teacher.base == os.path.join(folder, "teacher_dir")
    assert recipe.distillation == {"beta": 0.1}


def test_hub_ids_and_packaged_names_are_not_turned_into_paths(tmp_path):
    path = write_recipe(
        tmp_path, with_changes(teacher={"base": "FacebookAI/roberta-large"}, data={"source": "clinc_oos"})
    )
    recipe = load_recipe(path)
    assert recipe.teacher.base == "FacebookAI/roberta-large"
    assert recipe.data.source == "clinc_oos"


def test_overrides_are_applied_before_validation_and_parsed_as_yaml(tmp_path, monkeypatch):
    path = write_recipe(tmp_path, MINIMAL)
    monkeypatch.chdir(tmp_path)
    recipe = load_recipe(
        path,
        [
            "training.num_train_epochs=3",
            "distillation.teacher_layers=[1, 2]",
            "student.num_layers=2",
            "data.test_file=other/test.jsonl",
            "output.dir=runs/x",
            "evaluation.baseline=false",
        ],
    )
    assert recipe.training["num_train_epochs"] == 3.0
    assert recipe.distillation["teacher_layers"] == [1, 2]
    assert recipe.evaluation.baseline is False
    # paths given on the command line resolve against the current directory
    assert recipe.data.test_file == os.path.join(str(tmp_path), "other", "test.jsonl")
    assert recipe.output_dir == "runs/x"
    assert parse_overrides(["a.b=1e-4", "a.c=text", "a.d=[1,2]"]) == [
        ("a.b", 1e-4),  # the recipe loader reads 1e-4 as a float (YAML 1.1 would give the string "1e-4")
        ("a.c", "text"),
        ("a.d", [1, 2]),
    ]


def test_unknown_key_names_key_section_file_and_suggests(tmp_path):
    path = write_recipe(tmp_path, with_changes(student={"num_layer": 2}))
    with pytest.raises(
        ValueError, match=r"unknown key 'student.num_layer' in .*recipe\.yaml.*did you mean 'student.num_layers'"
    ):
        load_recipe(path)
    path = write_recipe(tmp_path, with_changes(training={"learning_rat": 1e-4}))
    with pytest.raises(ValueError, match=r"unknown key 'training.learning_rat' in .*'training.learning_rate'"):
        load_recipe(path)
    path = write_recipe(tmp_path, with_changes(techer={"base": "x"}))
    with pytest.raises(ValueError, match=r"unknown key 'techer' in .*recipe\.yaml .*did you mean 'teacher'"):
        load_recipe(path)
    with pytest.raises(ValueError, match=r"unknown key 'distillation.alpah' in .*'distillation.alpha'"):
        load_recipe(write_recipe(tmp_path, MINIMAL), ["distillation.alpah=0.5"])


def test_settings_in_the_wrong_section_are_redirected(tmp_path):
    with pytest.raises(ValueError, match=r"'training.beta' is not allowed in .*put it in 'distillation'"):
        load_recipe(write_recipe(tmp_path, with_changes(training={"beta": 0.1})))
    with pytest.raises(
        ValueError, match=r"'distillation.learning_rate' is not allowed in .*put it in 'training'"
    ):
        load_recipe(write_recipe(tmp_path, with_changes(distillation={"learning_rate": 0.1})))
    with pytest.raises(ValueError, match=r"'training.output_dir' is not allowed in .*output.dir"):
        load_recipe(write_recipe(tmp_path, with_changes(training={"output_dir": "x"})))


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"student": {"num_layers": "two"}}, r"'student.num_layers' in .* must be a valid integer.*got str: 'two'"),
        (
            {"training": {"num_train_epochs": "many"}},
            r"'training.num_train_epochs' in .* must be a valid number.*got str: 'many'",
        ),
        ({"distillation": {"alpha": [1]}}, r"'distillation.alpha' in .* must be a valid number"),
        ({"evaluation": {"baseline": "yes please"}}, r"'evaluation.baseline' in .* must be a valid boolean"),
        ({"data": {"max_length": 1.5}}, r"'data.max_length' in .* must be a valid integer"),
        ({"student": {"init": "magic"}}, r"student.init .* must be one of teacher_layers, pretrained, config"),
        ({"teacher": {"model": "x/y"}}, r"exactly one of 'model' .* or 'base'"),
        ({"student": {"init_layers": "random"}}, r"student.init_layers .* must be one of uniform, selected"),
        ({"task": "audio-classification"}, r"task 'audio-classification' .* unknown: available tasks are"),
    ],
)
def test_wrong_types_and_values_are_errors(tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        load_recipe(write_recipe(tmp_path, with_changes(**changes)))


def test_missing_recipe_file_and_bad_override_syntax(tmp_path):
    with pytest.raises(ValueError, match="recipe file .*nope.yaml.* does not exist"):
        load_recipe(str(tmp_path / "nope.yaml"))
    with pytest.raises(ValueError, match="must look like section.key=value"):
        load_recipe(write_recipe(tmp_path, MINIMAL), ["training.num_train_epochs"])


def test_smoke_shrinks_every_stage_but_keeps_them(tmp_path):
    recipe = load_recipe(os.path.join(RECIPES, "clinc150_minilm.yaml"), smoke_run=True)
    assert recipe.smoke
    assert recipe.data.max_train_samples <= 500 and recipe.data.max_eval_samples <= 500
    assert recipe.teacher.finetune.max_steps > 0 and recipe.teacher.finetune.max_steps <= 10
    assert 0 < recipe.training["max_steps"] <= 10
    assert recipe.evaluation.baseline is True  # every stage still runs
    assert recipe.distillation["selection_samples"] <= 128
    full = load_recipe(os.path.join(RECIPES, "clinc150_minilm.yaml"))
    assert smoke(full).training["max_steps"] == recipe.training["max_steps"]
    assert full.training.get("max_steps") is None  # smoke() does not touch the original
