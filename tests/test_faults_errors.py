"""Issue 25, classes 5 and 6: tracebacks, late errors and vague errors become one clear error before any work,
naming what is wrong, where (file / line / column, recipe key, row, folder, layer) and what is valid; nothing is
left in the output directory. Tiny data: the 3-intent CLINC150 subset and tiny BERT models of test_faults."""

import errno
import json
import os
import re
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from conftest import make_token_rows, pad_collate, small_config, tiny_bert
from datasets import Dataset
from test_faults import _data_dir, _dry_run, _run
from test_faults import space as space  # noqa: F401  (the module-scoped fixture: teacher, data, recipe)
from test_pipeline import _subset, _write_jsonl

from hf_spectralkd import SpectralDistillationConfig, SpectralDistillationTrainer
from hf_spectralkd.constants import RUN_MARKER
from hf_spectralkd.utils import FileWriteError

OUTSIDE_THE_RUN = {RUN_MARKER}  # what a run stopped before any stage may leave in its output directory


def _dry_run_error(space, tmp_path, capsys, *overrides):
    """``distill --dry-run`` with ``overrides``: exit code 2, nothing written; the error line."""
    code, err = _dry_run(space, tmp_path, capsys, *overrides)
    assert code == 2, err
    assert "Traceback" not in err
    return err


def _train_rows(text_of):
    """The training subset with ``text`` replaced by ``text_of(index, row)``."""
    return [dict(row, text=text_of(i, row)) for i, row in enumerate(_subset("train", 16))]


# ---------------------------------------------------------------------------------------------- 5. data
@pytest.mark.parametrize("rows, message", [
    (lambda: _train_rows(lambda i, row: i), r"train.jsonl, line 1, column 'text': the text is a number \(0\), not "
                                            r"a string; write every text as a string \(\"0\"\)"),
    (lambda: _train_rows(lambda i, row: 7 if i == 3 else row["text"]),
     r"train.jsonl, line 4, column 'text': the text is a number \(7\), not a string"),
    (lambda: _train_rows(lambda i, row: True if i == 5 else row["text"]),
     r"train.jsonl, line 6, column 'text': the text is a bool \(True\), not a string"),
])
def test_a_numeric_text_fails_in_dry_run_naming_file_line_and_column(space, tmp_path, capsys, rows, message):
    data = _data_dir(space, tmp_path, train=rows())
    err = _dry_run_error(space, tmp_path, capsys, f"data.source={data}")
    assert re.search(re.escape(str(data)) + "/" + message, err), err


def test_a_list_text_in_every_row_names_file_line_and_column(space, tmp_path, capsys):
    data = _data_dir(space, tmp_path, train=_train_rows(lambda i, row: [row["text"]]))
    err = _dry_run_error(space, tmp_path, capsys, f"data.source={data}")
    assert f"{data / 'train.jsonl'}, line 1, column 'text': the text is a list" in err, err
    assert "An error occurred while generating the dataset" not in err


def test_a_csv_text_column_of_numbers_is_read_as_texts(space, tmp_path):
    import csv

    from hf_spectralkd.pipeline import preflight
    from hf_spectralkd.recipes import load_recipe

    data = tmp_path / "csv"
    data.mkdir()
    for split in ("train", "validation", "test"):
        with open(data / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            for i, row in enumerate(_subset(split, {"train": 16, "validation": 4, "test": 6}[split])):
                writer.writerow([str(1000 + i) if split == "train" else row["text"], row["label"]])
    plan = preflight(load_recipe(space["recipe"], [f"data.source={data}", f"output.dir={tmp_path / 'run'}"]))
    assert plan.data.splits["train"].features["text"].dtype in ("string", "large_string")
    assert sorted(plan.data.splits["train"]["text"])[:2] == ["1000", "1001"]  # as written, not the numbers


@pytest.mark.parametrize("name", ["data[1]", "data*", "da?a"])
def test_glob_characters_in_a_data_path_name_that_folder_only(space, tmp_path, name):
    from hf_spectralkd.pipeline import preflight
    from hf_spectralkd.recipes import load_recipe
    from hf_spectralkd.tasks.sources import read_data_file

    # a sibling the pattern would match (data[1] -> data1, data* / da?a -> data) with other rows
    decoy = tmp_path / {"data[1]": "data1", "data*": "data", "da?a": "data"}[name]
    decoy.mkdir()
    for split in ("train", "validation", "test"):
        _write_jsonl(decoy / f"{split}.jsonl", _subset(split, 2))
    folder = tmp_path / name
    shutil.copytree(space["data"], folder)
    plan = preflight(load_recipe(space["recipe"], [f"data.source={folder}", f"output.dir={tmp_path / 'run'}"]))
    assert plan.data.info["splits"] == {"train": 48, "validation": 12, "test": 18}
    assert not (tmp_path / "run").exists()
    assert len(read_data_file(str(folder / "test.jsonl"))) == 18


# ---------------------------------------------------------------------------------------------- 5. settings
def test_temperature_1e300_is_a_clear_error(space, tmp_path, capsys):
    err = _dry_run_error(space, tmp_path, capsys, "distillation.temperature=1e300")
    assert "temperature must be in (0, 1000], got 1e+300" in err, err
    with pytest.raises(ValueError, match=r"temperature must be in \(0, 1000\], got 1e\+300"):
        SpectralDistillationConfig(output_dir=str(tmp_path / "out"), temperature=1e300, report_to="none")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("overrides, message", [
    (["distillation.student_layers=[1,5]", "distillation.teacher_layers=[2,4]"],
     r"distillation.student_layers \[5\] out of range: valid indices are 0..2 \(the student has 2 blocks\)"),
    (["distillation.num_aligned_layers=3"], r"distillation.num_aligned_layers=3 but the student has only 2 blocks"),
    (["student.config.hidden_size=64"],
     r"student.config.hidden_size=64: student.init teacher_layers copies the teacher's blocks, whose hidden_size is "
     r"32, so it cannot change"),
    (["student.init=config", "student.config.num_attention_heads=5"],
     r"student.config \(num_attention_heads=5\): the student \(student.init: config\) cannot be built .*The hidden "
     r"size \(32\) is not a multiple of the number of attention heads \(5\)"),
    (["training.seed=-1"], r"training.seed in .*recipe.yaml must be a whole number in 0..4294967295 .*got -1"),
    (["training.data_seed=4294967296"], r"training.data_seed in .*recipe.yaml must be a whole number in "
                                        r"0..4294967295 .*got 4294967296"),
])
def test_settings_that_failed_after_stages_ran_fail_in_dry_run(space, tmp_path, capsys, overrides, message):
    err = _dry_run_error(space, tmp_path, capsys, *overrides)
    assert re.search(message, err), err


def test_a_teacher_finetune_seed_out_of_range_fails_in_dry_run(space, tmp_path, capsys):
    err = _dry_run_error(space, tmp_path, capsys, f"teacher.base={space['teacher']}", "teacher.model=null",
                         "teacher.finetune.seed=-1")
    assert re.search(r"teacher.finetune.seed in .*recipe.yaml must be a whole number in 0..4294967295", err), err


def test_a_student_config_that_builds_passes_the_dry_run(space, tmp_path, capsys):
    code, err = _dry_run(space, tmp_path, capsys, "student.init=config", "student.config.hidden_size=16",
                         "student.config.intermediate_size=32", "distillation.student_layers=[1,2]")
    assert code == 0, err


DIGITS_RECIPE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "recipes", "digits_vit.yaml")


@pytest.mark.parametrize("overrides, message", [
    (["student.init=teacher_layers", "student.config.embed_dim=48"],
     r"student.config.embed_dim=48: student.init teacher_layers copies the teacher's blocks, whose embed_dim is 64, "
     r"so it cannot change"),
    (["student.init=teacher_layers", "student.config.embed_dim=64", "student.config.num_heads=2"],
     r"student.config.num_heads=2: .* whose num_heads is 4, so it cannot change"),
    (["student.init=teacher_layers", "student.config={}", "student.config.patch_size=4"],
     r"student.config.patch_size=4: .* whose patch_size is \(8, 8\), so it cannot change"),
    (["student.config.num_heads=5"],
     r"student.config \(embed_dim=32, num_heads=5\): the student \(student.init: config\) cannot be built from the "
     r"teacher's architecture with these values: dim should be divisible by num_heads"),
])
def test_an_image_student_that_cannot_be_built_fails_in_dry_run(tmp_path, capsys, monkeypatch, overrides, message):
    from hf_spectralkd.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "run"
    code = main(["distill", "--config", DIGITS_RECIPE, "--dry-run", f"output.dir={out}", *overrides])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert re.search(message, err), err
    assert not out.exists()


def test_an_image_student_with_the_teachers_own_widths_passes_the_dry_run(tmp_path, capsys, monkeypatch):
    """Settings equal to the teacher's are no change (a patch size given as 8 or as [8, 8])."""
    from hf_spectralkd.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = main(["distill", "--config", DIGITS_RECIPE, "--dry-run", f"output.dir={tmp_path / 'run'}",
                 "student.init=teacher_layers", "student.config={}", "student.config.embed_dim=64",
                 "student.config.patch_size=[8,8]"])
    assert code == 0, capsys.readouterr().err


def test_copied_timm_blocks_refuse_a_width_the_teacher_has_by_default():
    """timm's default embed_dim (not among the teacher's creation arguments) counts as the teacher's width."""
    import timm

    from hf_spectralkd.tasks.image import copy_timm_blocks

    teacher = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=3, img_size=32, depth=2)
    assert "embed_dim" not in teacher._model_args
    with pytest.raises(ValueError, match=r"student.config.embed_dim=96: .* whose embed_dim is 192, so it cannot"):
        copy_timm_blocks(teacher, [1], {"embed_dim": 96})
    assert copy_timm_blocks(teacher, [2], {"embed_dim": 192}).embed_dim == 192


# ---------------------------------------------------------------------------------------------- 5. trainer
def _trainer(tmp_path, student, teacher, rows=None, **overrides):
    overrides.setdefault("spectral_dynamics", False)
    return SpectralDistillationTrainer(model=student, teacher_model=teacher, args=small_config(tmp_path, **overrides),
                                       train_dataset=Dataset.from_list(rows or make_token_rows(16)),
                                       data_collator=pad_collate)


def _nothing_written(tmp_path):
    out = tmp_path / "out"
    return not out.exists() or not os.listdir(out)


def test_a_frozen_student_is_refused_at_construction(tmp_path):
    student = tiny_bert(2, 16, seed=1)
    student.requires_grad_(False)
    with pytest.raises(ValueError, match=r"the student BertForSequenceClassification has no parameter that requires "
                                         r"grad \(\d+ parameter tensors, all frozen\).*requires_grad_\(True\)"):
        _trainer(tmp_path, student, tiny_bert(4, 32))
    assert _nothing_written(tmp_path)


def test_the_teacher_as_its_own_student_is_refused_at_construction(tmp_path):
    teacher = tiny_bert(4, 32)
    with pytest.raises(ValueError, match=r"the student \(model=\) and the teacher \(teacher_model=\) are the same "
                                         r"BertForSequenceClassification object.*copy.deepcopy\(teacher\)"):
        _trainer(tmp_path, teacher, teacher)
    assert _nothing_written(tmp_path)
    assert all(p.requires_grad for p in teacher.parameters())  # the refused run froze nothing


def test_a_student_sharing_trainable_weights_with_the_teacher_is_refused(tmp_path):
    teacher = tiny_bert(4, 32)
    student = tiny_bert(4, 32, seed=1)
    student.classifier = teacher.classifier  # the same module: freezing the teacher would freeze it
    with pytest.raises(ValueError, match=r"shares 2 trainable parameter tensor\(s\) with the teacher \(e.g. "
                                         r"classifier.weight\)"):
        _trainer(tmp_path, student, teacher)


@pytest.mark.parametrize("value, row", [(7, 5), (-3, 11)])
def test_a_label_id_out_of_range_is_named_before_any_work(tmp_path, value, row):
    rows = make_token_rows(16)
    rows[row]["labels"] = value
    trainer = _trainer(tmp_path, tiny_bert(2, 16, seed=1), tiny_bert(4, 32), rows=rows)
    with pytest.raises(ValueError, match=rf"train_dataset: row {row} \(0-based\), column 'labels', has the label id "
                                         rf"{value}, but the model's head has 3 classes: valid label ids are 0..2 "
                                         r"\(or -100 for a row that is not scored\); 1 label\(s\) are out of range"):
        trainer.train()
    assert trainer.state.global_step == 0 and _nothing_written(tmp_path)  # no layer selection ran


def test_label_ids_of_a_token_head_and_of_the_eval_set_are_checked(tmp_path):
    from hf_spectralkd.guards import check_label_ids

    tokens = Dataset.from_dict({"labels": [[0, -100, 1], [2, 1], [1, 3, 0]]})
    with pytest.raises(ValueError, match=r"eval: row 2 \(0-based\), column 'labels', has the label id 3, .*valid "
                                         r"label ids are 0..2 \(or -100 for a position that is not scored\)"):
        check_label_ids(tokens, 3, "eval")
    check_label_ids(tokens, 4, "eval")  # in range: passes
    check_label_ids(Dataset.from_dict({"labels": [0.5, 7.0]}), 3)  # float targets (regression, soft): not ids
    check_label_ids(Dataset.from_dict({"labels": [0, 1, 9]}).select([0, 1]), 3)  # only the selected rows count
    rows = make_token_rows(16)
    rows[2]["labels"] = 3
    trainer = SpectralDistillationTrainer(
        model=tiny_bert(2, 16, seed=1), teacher_model=tiny_bert(4, 32),
        args=small_config(tmp_path, spectral_dynamics=False, eval_strategy="steps", eval_steps=2),
        train_dataset=Dataset.from_list(make_token_rows(16)), eval_dataset=Dataset.from_list(rows),
        data_collator=pad_collate)
    with pytest.raises(ValueError, match=r"eval_dataset: row 2 \(0-based\), column 'labels', has the label id 3"):
        trainer.train()
    assert trainer.state.global_step == 0


# ---------------------------------------------------------------------------------------------- 5. full disk
NO_SPACE = 'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'


def _disk_full_after(monkeypatch, calls: int):
    """safetensors' save (the model weights) fails for lack of space after ``calls`` successful saves."""
    import transformers.modeling_utils as modeling_utils
    from safetensors import SafetensorError

    real, seen = modeling_utils.safe_save_file, []

    def save(*args, **kwargs):
        seen.append(args[1] if len(args) > 1 else kwargs.get("filename"))
        if len(seen) > calls:
            raise SafetensorError(NO_SPACE)
        return real(*args, **kwargs)

    monkeypatch.setattr(modeling_utils, "safe_save_file", save)
    return seen


def test_a_full_disk_at_a_checkpoint_names_it_and_removes_the_half_written_one(tmp_path, monkeypatch):
    trainer = _trainer(tmp_path, tiny_bert(2, 16, seed=1), tiny_bert(4, 32), save_strategy="steps", save_steps=2,
                       max_steps=4)
    _disk_full_after(monkeypatch, calls=1)  # checkpoint-2 is written, checkpoint-4 is not
    checkpoint = tmp_path / "out" / "checkpoint-4"
    with pytest.raises(FileWriteError) as caught:
        trainer.train()
    message = str(caught.value)
    assert message.startswith(f"could not write the checkpoint of step 4 to {checkpoint}: the disk is full "
                              "(SafetensorError: Error while serializing"), message
    assert "the half-written folder was removed" in message and caught.value.filename == str(checkpoint)
    assert caught.value.errno == errno.ENOSPC
    assert not checkpoint.exists() and (tmp_path / "out" / "checkpoint-2" / "trainer_state.json").exists()


def test_a_failed_torch_save_of_a_checkpoint_names_the_folder(tmp_path, monkeypatch):
    import transformers.trainer as trainer_module

    def short_write(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed")

    trainer = _trainer(tmp_path, tiny_bert(2, 16, seed=1), tiny_bert(4, 32), save_strategy="steps", save_steps=2,
                       max_steps=2)
    monkeypatch.setattr(trainer_module.torch, "save", short_write)
    with pytest.raises(OSError, match=rf"could not write the checkpoint of step 2 to {tmp_path / 'out'}/checkpoint-2"
                                      r": a write fell short \(is the disk full\?\) \(RuntimeError: "):
        trainer.train()
    assert not (tmp_path / "out" / "checkpoint-2").exists()


@pytest.mark.parametrize("saves, folder, what", [
    (0, ".student.tmp/checkpoint-2", "the checkpoint of step 2"),  # the last step's checkpoint
    (1, ".student.tmp", "the model"),  # the checkpoint is written, the student's final save is not
])
def test_a_full_disk_when_the_run_saves_its_student_names_the_folder(space, tmp_path, monkeypatch, capsys, saves,
                                                                     folder, what):
    from hf_spectralkd.cli import main

    out = tmp_path / "run"
    _disk_full_after(monkeypatch, calls=saves)
    code = main(["distill", "--config", space["recipe"], f"output.dir={out}"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert f"error: could not write {what} to {out / folder}: the disk is full (SafetensorError: Error while " \
           "serializing" in err, err
    left = sorted(os.listdir(out))
    if saves == 0:  # nothing complete to resume from: no half-written stage stays
        assert left == sorted(OUTSIDE_THE_RUN | {"analysis"}), left
    else:  # the complete checkpoint stays for the next run to resume from; no student stage
        assert left == sorted(OUTSIDE_THE_RUN | {"analysis", ".student.tmp"}), left
        assert (out / ".student.tmp" / "checkpoint-2" / "trainer_state.json").is_file()


def test_a_full_disk_in_any_stage_names_the_stage_folder(tmp_path):
    from hf_spectralkd.pipeline import run_stage

    def fill(directory):
        with open(os.path.join(directory, "model.safetensors"), "wb"):
            raise OSError(errno.ENOSPC, "No space left on device")  # (as model.save_pretrained would)

    with pytest.raises(FileWriteError, match=rf"could not write the teacher stage to {tmp_path / '.teacher.tmp'}: "
                                             r"the disk is full \(OSError: \[Errno 28\] No space left on device\)"):
        run_stage(SimpleNamespace(out=str(tmp_path)), "teacher", "fp", fill, log=lambda line: None)
    assert os.listdir(tmp_path) == []


def test_a_failed_stage_that_is_not_a_full_disk_keeps_its_own_error(tmp_path):
    from hf_spectralkd.pipeline import run_stage

    def broken(directory):
        raise OSError(errno.EACCES, "Permission denied", os.path.join(directory, "x"))

    with pytest.raises(PermissionError, match="Permission denied"):
        run_stage(SimpleNamespace(out=str(tmp_path)), "teacher", "fp", broken, log=lambda line: None)


# ---------------------------------------------------------------------------------------------- 5. pickle weights
def _pickle_teacher(space, tmp_path, extra=None):
    """The teacher with its weights as a pytorch_model.bin (plain tensors, or plus ``extra`` objects)."""
    from safetensors.torch import load_file

    folder = tmp_path / "pickle_teacher"
    shutil.copytree(space["teacher"], folder)
    weights = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save({**weights, **(extra or {})}, folder / "pytorch_model.bin")
    return folder


def test_a_pickle_teacher_that_holds_more_than_tensors_is_refused_with_how_to_convert(space, tmp_path, capsys):
    import numpy as np

    folder = _pickle_teacher(space, tmp_path, {"extra": np.zeros(2)})
    err = _dry_run_error(space, tmp_path, capsys, f"teacher.model={folder}")
    assert f"teacher.model: {folder / 'pytorch_model.bin'} is a pickle file that holds more than tensors " \
           "(Unsupported global: GLOBAL numpy" in err, err
    assert "nothing was run" in err and "needs the weights as model.safetensors" in err
    assert "UnpicklingError" not in err
    # the drop-in trainer's path: the same error, before any work
    with pytest.raises(ValueError, match=r"teacher_model: .*pytorch_model.bin is a pickle file that holds more"):
        SpectralDistillationTrainer(model=tiny_bert(2, 16, seed=1), teacher_model=str(folder),
                                    args=small_config(tmp_path), train_dataset=Dataset.from_list(make_token_rows(8)),
                                    data_collator=pad_collate)
    # the conversion the message gives works (run here on a file this test made: trusted)
    command = re.search(r'convert it once: python -c "(.*)"$', err.strip().splitlines()[-1]).group(1)
    subprocess.run([sys.executable, "-c", command], check=True, capture_output=True, timeout=300)
    assert (folder / "model.safetensors").is_file()
    code, err = _dry_run(space, tmp_path, capsys, f"teacher.model={folder}")
    assert code == 0, err


def test_a_pickle_teacher_of_plain_tensors_still_loads(space, tmp_path, capsys):
    from hf_spectralkd.loading import load_classifier

    folder = _pickle_teacher(space, tmp_path)
    code, err = _dry_run(space, tmp_path, capsys, f"teacher.model={folder}")
    assert code == 0, err
    assert load_classifier(str(folder)).config.num_labels == 3


# ---------------------------------------------------------------------------------------------- 6. vague errors
@pytest.mark.parametrize("override, message", [
    ("data.label_names=[timer,weather,timer,translate,weather]",
     "data.label_names in {recipe} lists 'timer' 2 times, 'weather' 2 times: it is the model's classes in id order, "
     "each named once"),
    ("data.label_names=[]", "data.label_names in {recipe} is empty"),
    ("evaluation.batch_size=-4", "evaluation.batch_size in {recipe} must be >= 1, got -4 (leave it unset or null for "
                                 "the training's per_device_eval_batch_size"),
    ("evaluation.batch_size=0", "evaluation.batch_size in {recipe} must be >= 1, got 0"),
    ("data.seed=-1", "data.seed in {recipe} must be a whole number in 0..4294967295 (the seeds numpy accepts), "
                     "got -1"),
])
def test_vague_errors_name_the_key_and_what_is_valid(space, tmp_path, capsys, override, message):
    err = _dry_run_error(space, tmp_path, capsys, override)
    assert message.format(recipe=space["recipe"]) in err, err
    assert "per_device_eval_batch_size must be" not in err  # (the key the user did not write)


def test_evaluation_batch_size_null_is_the_training_default(space, tmp_path, capsys):
    from hf_spectralkd.pipeline import preflight
    from hf_spectralkd.recipes import load_recipe

    plan = preflight(load_recipe(space["recipe"], ["evaluation.batch_size=null", f"output.dir={tmp_path / 'r'}"]))
    assert plan.eval_batch_size == 128
    plan = preflight(load_recipe(space["recipe"], ["evaluation.batch_size=4", f"output.dir={tmp_path / 'r'}"]))
    assert plan.eval_batch_size == 4


def test_results_of_other_inputs_at_the_same_time_say_what_differs(tmp_path):
    from hf_spectralkd.constants import STAGE_MARKER
    from hf_spectralkd.results import check_results_current

    when = "2026-01-02T03:04:05+00:00"
    (tmp_path / "student").mkdir()
    (tmp_path / "student" / STAGE_MARKER).write_text(json.dumps({"fingerprint": "aaaa", "finished": when}))
    results = SimpleNamespace(stages={"student": {"fingerprint": "bbbb", "finished": when}})
    with pytest.raises(ValueError) as caught:
        check_results_current(results, tmp_path)
    message = str(caught.value)
    assert message.count(when) == 1, message
    assert "holds one finished at that time but from other inputs (fingerprint aaaa, results.json records bbbb)" \
        in message
    results.stages["student"]["finished"] = "2026-01-01T00:00:00+00:00"  # another time: both times are named
    with pytest.raises(ValueError, match=rf"finished at 2026-01-01T00:00:00\+00:00, but .* now holds the one "
                                         rf"finished at {re.escape(when)}"):
        check_results_current(results, tmp_path)


def test_inf_inside_a_teacher_block_names_the_teachers_layer(space, tmp_path):
    from safetensors.torch import load_file, save_file

    teacher = tmp_path / "teacher"
    shutil.copytree(space["teacher"], teacher)
    weights = load_file(teacher / "model.safetensors")
    weights["bert.encoder.layer.2.output.dense.bias"][0] = float("inf")  # block 3 (hidden_states[3])
    save_file(weights, teacher / "model.safetensors", metadata={"format": "pt"})
    out = tmp_path / "run"
    with pytest.raises(ValueError, match=r"teacher spectral analysis: the model BertForSequenceClassification returns "
                                         r"non-finite hidden states \((inf and )?NaN\) at hidden_states\[3\] \(the "
                                         r"output of block 3\)"):
        _run(space, out, f"teacher.model={teacher}")
    assert set(os.listdir(out)) == OUTSIDE_THE_RUN  # no analysis, no student


def test_a_non_finite_teacher_stops_the_trainers_layer_selection(tmp_path):
    teacher = tiny_bert(4, 32)
    with torch.no_grad():
        teacher.bert.encoder.layer[0].output.dense.bias[0] = float("inf")
    trainer = _trainer(tmp_path, tiny_bert(2, 16, seed=1), teacher)
    with pytest.raises(ValueError, match=r"teacher spectral layer selection: .* non-finite hidden states .* at "
                                         r"hidden_states\[1\] \(the output of block 1\)"):
        trainer.train()
    assert _nothing_written(tmp_path)


def test_the_finite_check_skips_padding_and_names_the_layer():
    from hf_spectralkd.analysis import check_finite_hidden_states

    hidden = [torch.zeros(2, 3, 4), torch.ones(2, 3, 4)]
    hidden[1][1, 2, 0] = float("nan")  # a padding position: not measured
    check_finite_hidden_states(hidden, torch.tensor([[1, 1, 1], [1, 1, 0]]), tiny_bert(2, 16))
    with pytest.raises(ValueError, match=r"hidden_states\[1\] \(the output of block 1\)"):
        check_finite_hidden_states(hidden, torch.ones(2, 3), tiny_bert(2, 16))


def test_the_numeric_text_check_passes_string_texts(space, tmp_path, capsys):
    rows = _train_rows(lambda i, row: "42" if i == 0 else row["text"])  # a text that is a number written as text
    data = _data_dir(space, tmp_path, train=rows)
    code, err = _dry_run(space, tmp_path, capsys, f"data.source={data}")
    assert code == 0, err

