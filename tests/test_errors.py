"""Every user mistake of the core (issue 2, point 6) is a clear ValueError before any training step,
and nothing is written to the output directory."""

import os

import pytest
import torch
from conftest import make_token_rows, pad_collate, small_config, tiny_bert, tiny_roberta
from datasets import Dataset
from transformers import BertConfig, BertForSequenceClassification, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

from hf_spectralkd import SpectralDistillationConfig, SpectralDistillationTrainer


def assert_nothing_written(tmp_path):
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir()), sorted(os.listdir(out))


def build(tmp_path, teacher, student, **overrides):
    overrides.setdefault("spectral_dynamics", False)
    trainer = SpectralDistillationTrainer(
        model=student,
        teacher_model=teacher,
        args=small_config(tmp_path, **overrides),
        train_dataset=Dataset.from_list(make_token_rows(16)),
        data_collator=pad_collate,
    )
    trainer.train()
    return trainer


def bert_with(vocab_size=60, pad_token_id=0, seed=0, num_layers=2):
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=16,
        num_hidden_layers=num_layers,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=3,
        pad_token_id=pad_token_id,
    )
    return BertForSequenceClassification(config)


class NoHiddenStatesModel(PreTrainedModel):
    """A classifier whose forward ignores ``output_hidden_states`` (it never returns hidden states)."""

    config_class = BertConfig
    base_model_prefix = "no_hidden"

    def __init__(self, config):
        super().__init__(config)
        self.embed = torch.nn.Embedding(config.vocab_size, config.hidden_size)
        self.head = torch.nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self, input_ids=None, attention_mask=None, labels=None, output_hidden_states=None, return_dict=None, **kwargs
    ):
        return SequenceClassifierOutput(logits=self.head(self.embed(input_ids).mean(dim=1)))


def no_hidden_model():
    torch.manual_seed(0)
    config = BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, num_labels=3)
    return NoHiddenStatesModel(config)


def test_num_labels_differ(tmp_path):
    with pytest.raises(ValueError, match=r"different num_labels \(teacher 3, student 5\)"):
        build(tmp_path, tiny_bert(4, num_labels=3), tiny_bert(2, 16, num_labels=5))
    assert_nothing_written(tmp_path)


def test_id2label_differ(tmp_path):
    teacher = tiny_bert(4, id2label={0: "weather", 1: "alarm", 2: "timer"})
    student = tiny_bert(2, 16, id2label={0: "weather", 1: "timer", 2: "alarm"})
    with pytest.raises(
        ValueError,
        match=r"id2label differ \(1: teacher 'alarm' vs student 'timer', 2: teacher 'timer' vs student 'alarm'\)",
    ):
        build(tmp_path, teacher, student)
    assert_nothing_written(tmp_path)


def test_teacher_layer_out_of_range_gives_valid_range(tmp_path):
    with pytest.raises(
        ValueError, match=r"teacher_layers \[5\] out of range: valid indices are 0\.\.4 \(the teacher has 4 blocks\)"
    ):
        build(tmp_path, tiny_bert(4), tiny_bert(2, 16), teacher_layers=[2, 5], layer_selection="manual")
    assert_nothing_written(tmp_path)


def test_student_layer_out_of_range_gives_valid_range(tmp_path):
    with pytest.raises(
        ValueError, match=r"student_layers \[3\] out of range: valid indices are 0\.\.2 \(the student has 2 blocks\)"
    ):
        build(tmp_path, tiny_bert(4), tiny_bert(2, 16), teacher_layers=[2, 4], student_layers=[1, 3])
    assert_nothing_written(tmp_path)


def test_explicit_layer_lists_of_different_length(tmp_path):
    with pytest.raises(
        ValueError, match="teacher_layers has 3 entries and student_layers has 2: they are paired one to one"
    ):
        SpectralDistillationConfig(
            output_dir=str(tmp_path / "out"), teacher_layers=[1, 2, 3], student_layers=[1, 2], report_to="none"
        )
    assert_nothing_written(tmp_path)
    # teacher_layers against the student's blocks (student_layers not given)
    with pytest.raises(ValueError, match=r"teacher_layers has 3 entries but 2 student layers are aligned"):
        build(tmp_path, tiny_bert(4), tiny_bert(2, 16), teacher_layers=[1, 2, 3])
    assert_nothing_written(tmp_path)


def test_vocab_size_differ(tmp_path):
    with pytest.raises(
        ValueError, match="tokenizations are incompatible: vocab_size is 80 for the teacher and 60 for the student"
    ):
        build(tmp_path, bert_with(vocab_size=80, num_layers=4), bert_with(vocab_size=60))
    assert_nothing_written(tmp_path)


def test_pad_token_id_differ(tmp_path):
    # a RoBERTa teacher (pad 1) and a BERT student (pad 0) with the same vocabulary size
    with pytest.raises(
        ValueError, match="tokenizations are incompatible: pad_token_id is 1 for the teacher and 0 for the student"
    ):
        build(tmp_path, tiny_roberta(4), tiny_bert(2, 16))
    assert_nothing_written(tmp_path)


def test_teacher_without_hidden_states(tmp_path):
    with pytest.raises(
        ValueError, match="NoHiddenStatesModel did not return hidden_states with output_hidden_states=True"
    ):
        build(tmp_path, no_hidden_model(), tiny_bert(2, 16))
    assert_nothing_written(tmp_path)


def test_student_without_hidden_states(tmp_path):
    with pytest.raises(
        ValueError, match="NoHiddenStatesModel did not return hidden_states with output_hidden_states=True"
    ):
        build(tmp_path, tiny_bert(4), no_hidden_model(), teacher_layers=[2, 4], layer_selection="manual")
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("alpha", 1.5, r"alpha must be in \[0, 1\], got 1.5"),
        ("alpha", -0.1, r"alpha must be in \[0, 1\], got -0.1"),
        ("temperature", 0.0, r"temperature must be in \(0, 1000\], got 0.0"),
        ("temperature", -2.0, r"temperature must be in \(0, 1000\], got -2.0"),
        ("beta", -0.5, r"beta must be in \[0, 10000\], got -0.5"),
        ("beta", float("nan"), "beta must be a finite number, got nan"),
    ],
)
def test_config_values_out_of_range(tmp_path, field, value, message):
    with pytest.raises(ValueError, match=message):
        SpectralDistillationConfig(output_dir=str(tmp_path / "out"), report_to="none", **{field: value})
    assert_nothing_written(tmp_path)
