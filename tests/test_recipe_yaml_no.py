"""`training.eval_strategy: no` in a recipe: YAML 1.1 reads a bare `no` as the boolean False.

The TrainingArguments strategies that have a "no" value (eval_strategy, save_strategy, logging_strategy) must
accept it as that string, in the recipe file and as a command-line override; a boolean where no "no" value
exists stays an error naming the key.
"""

import pytest

RECIPE = """\
task: text-classification
teacher: {base: packaged:minilm}
student: {init: teacher_layers, num_layers: 2}
data: {source: data.csv}
training:
  eval_strategy: no
  save_strategy: no
  logging_strategy: steps
"""


def test_bare_no_is_the_no_strategy(tmp_path):
    from hf_spectralkd import SpectralDistillationConfig
    from hf_spectralkd.recipes import load_recipe

    (tmp_path / "data.csv").write_text("text,label\na b,x\nc d,y\n")
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE)
    recipe = load_recipe(path)
    assert recipe.training["eval_strategy"] == "no" and recipe.training["save_strategy"] == "no"
    args = SpectralDistillationConfig(output_dir=str(tmp_path / "out"), **recipe.training)
    assert args.eval_strategy == "no" and args.save_strategy == "no"
    # the same value as an override on the command line (overrides are YAML too)
    recipe = load_recipe(path, ["training.eval_strategy=steps", "training.logging_strategy=no"])
    assert recipe.training["eval_strategy"] == "steps" and recipe.training["logging_strategy"] == "no"


def test_yes_is_still_an_error(tmp_path):
    from hf_spectralkd.recipes import load_recipe

    (tmp_path / "data.csv").write_text("text,label\na b,x\nc d,y\n")
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.replace("eval_strategy: no", "eval_strategy: yes"))
    with pytest.raises(ValueError, match=r"'training.eval_strategy' in .* must be one of 'no', 'steps', 'epoch'"):
        load_recipe(path)
