"""The recipe loader: one YAML loader (YAML 1.2 floats, duplicate keys refused, alias bombs refused fast) and
pydantic's checks reported at the key's dotted path."""

import time

import pytest

from hf_spectralkd.recipes import MAX_YAML_NODES, load_recipe, load_yaml

BASE = """\
teacher: {base: packaged:minilm}
student:
  init: teacher_layers
  num_layers: 2
data: {source: data.csv}
"""


def recipe(tmp_path, text):
    (tmp_path / "data.csv").write_text("text,label\na b,x\nc d,y\n")
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def test_exponent_numbers_are_floats_where_yaml11_reads_strings():
    assert load_yaml("a: 1e-4\nb: 1.0e5\nc: -2E3\nd: .5e1\ne: '1e-4'\nf: 1_000\ng: 0.5\nh: e5\n") == {
        "a": 1e-4, "b": 1e5, "c": -2e3, "d": 5.0, "e": "1e-4", "f": 1000, "g": 0.5, "h": "e5"}


def test_quoted_numbers_are_read_where_a_number_is_expected(tmp_path):
    path = recipe(tmp_path, BASE + "training: {learning_rate: '3e-5', max_steps: '1e3', num_train_epochs: 2}\n"
                              "evaluation: {recommend_margin: '0.5'}\n")
    loaded = load_recipe(path)
    assert loaded.training == {"learning_rate": 3e-5, "max_steps": 1000, "num_train_epochs": 2.0}
    assert isinstance(loaded.training["max_steps"], int) and loaded.evaluation.recommend_margin == 0.5


def test_a_key_given_twice_is_an_error_naming_key_and_lines(tmp_path):
    path = recipe(tmp_path, BASE.replace("  num_layers: 2\n", "  num_layers: 2\n  num_layers: 5\n"))
    with pytest.raises(ValueError, match=r"duplicate key 'num_layers' \(first given on line 4\)\n.*line 5"):
        load_recipe(path)
    with pytest.raises(ValueError, match=r"duplicate key 'beta'"):
        load_recipe(recipe(tmp_path, BASE + "distillation: {beta: 1, beta: 2}\n"))
    # a merge key is not a duplicate: the keys after it win, as YAML says
    assert load_yaml("d: &d {a: 1, b: 2}\ne: {<<: *d, b: 3}\n")["e"] == {"a": 1, "b": 3}


def test_an_alias_bomb_is_refused_quickly(tmp_path):
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, 10):  # 9 ** 10 values once expanded
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]")
    path = recipe(tmp_path, BASE + "\n".join(lines) + "\n")
    start = time.perf_counter()
    with pytest.raises(ValueError, match=f"expands to more than {MAX_YAML_NODES} values"):
        load_recipe(path)
    assert time.perf_counter() - start < 2.0
    with pytest.raises(ValueError, match=r"alias \*a is inside its own anchor"):
        load_recipe(recipe(tmp_path, BASE + "hub: &a {x: *a}\n"))
    # a few aliases are fine
    assert load_yaml("a: &x [1, 2]\nb: *x\nc: *x\n") == {"a": [1, 2], "b": [1, 2], "c": [1, 2]}


def test_a_huge_or_deeply_nested_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match="a recipe is a small YAML file"):
        load_recipe(recipe(tmp_path, BASE + "#" * (2 << 20) + "\n"))
    with pytest.raises(ValueError, match="nested too deeply"):
        load_recipe(recipe(tmp_path, BASE + "x: " + "[" * 5_000 + "]" * 5_000 + "\n"))


@pytest.mark.parametrize("extra, message", [
    ("distillation: {betaa: 1}",
     r"unknown key 'distillation.betaa' in .*recipe.yaml \(did you mean 'distillation.beta'"),
    ("data: {source: data.csv, transfer: {source: x.jsonl, max_sample: 3}}",
     r"unknown key 'data.transfer.max_sample' .*did you mean 'data.transfer.max_samples'.*valid keys of"),
    ("teacher: {base: x, finetune: {args: {weight_decy: 0.1}}}",
     r"unknown key 'teacher.finetune.args.weight_decy' .*'teacher.finetune.args.weight_decay'"),
    ("data: {transfer: {split: train}}", r"missing required key 'data.transfer.source'"),
    ("student: 3", r"'student' in .* must be a mapping of keys to values \(got int: 3\)"),
    ("student: {num_layers: yes}", r"'student.num_layers' in .* must be a number, not a boolean \(got bool: True\)"),
    ("training: {max_steps: 2.5}", r"'training.max_steps' in .* must be a valid integer"),
    ("training: {save_total_limit: no}", r"'training.save_total_limit' in .* must be a number, not a boolean"),
    ("training: {hub_strategy: no}", r"'training.hub_strategy' in .* must be one of 'end', "),
    ("student: {init_layers: 2.5}", r"'student.init_layers' in .* must be a valid string or a valid list"),
    ("data: {source: data.csv, augment: {mask_prob: 2}}", r"'data.augment' in .*: augment.mask_prob must be"),
    ("path: x.yaml", r"unknown key 'path' in .*; valid keys: name, teacher"),
])
def test_mistakes_name_the_dotted_key(tmp_path, extra, message):
    with pytest.raises(ValueError, match=message):
        load_recipe(recipe(tmp_path, _replace_section(BASE, extra)))


def test_every_mistake_is_reported_at_once(tmp_path):
    with pytest.raises(ValueError) as info:
        load_recipe(recipe(tmp_path, BASE + "evaluation: {splt: test, batch_size: many}\n"))
    lines = sorted(str(info.value).splitlines())
    assert len(lines) == 2 and "'evaluation.batch_size'" in lines[0] and "'evaluation.splt'" in lines[1]


def _replace_section(text: str, section: str) -> str:
    """``text`` with ``section`` (one line, ``name: value``) in place of its top-level section of that name."""
    name = section.split(":", 1)[0]
    kept, skipping = [], False
    for line in text.splitlines():
        if not line.startswith(" "):
            skipping = line.startswith(f"{name}:")
        if not skipping:
            kept.append(line)
    return "\n".join([*kept, section]) + "\n"
