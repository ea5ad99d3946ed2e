"""Labels in another numbering than the teacher's id2label stop the run before the first step, naming the
renumbering; correct labels and an untrained teacher pass (issue: silent 3-10 % accuracy)."""

import os

import pytest
import torch
from conftest import NUM_LABELS, make_token_rows, pad_collate, small_config, tiny_bert
from datasets import Dataset
from transformers import BertConfig, BertForSequenceClassification

from hf_spectralkd import SpectralDistillationTrainer


class RuleTeacherForSequenceClassification(BertForSequenceClassification):
    """A teacher that knows the task: class = first token id mod NUM_LABELS (conftest's rule)."""

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        out = super().forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        out.logits = 10.0 * torch.nn.functional.one_hot(input_ids[:, 0] % NUM_LABELS, NUM_LABELS).float()
        return out


def rule_teacher():
    torch.manual_seed(0)
    config = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=NUM_LABELS,
                        id2label={0: "alarm", 1: "timer", 2: "weather"},
                        label2id={"alarm": 0, "timer": 1, "weather": 2})
    return RuleTeacherForSequenceClassification(config)


def trainer_for(tmp_path, rows, teacher):
    return SpectralDistillationTrainer(
        model=tiny_bert(num_layers=2, hidden=16, seed=1), teacher_model=teacher,
        args=small_config(tmp_path, max_steps=1, spectral_dynamics=False, selection_samples=64),
        train_dataset=Dataset.from_list(rows), data_collator=pad_collate,
    )


def test_permuted_labels_stop_before_the_first_step(tmp_path):
    rows = make_token_rows(64, seed=2)
    for row in rows:
        row["labels"] = (row["labels"] + 1) % NUM_LABELS  # the user's own numbering
    trainer = trainer_for(tmp_path, rows, rule_teacher())
    with pytest.raises(ValueError, match=r"training labels do not follow the teacher's id2label: on 64 sampled "
                                         r"training rows the teacher agrees with the labels 0 % of the time "
                                         r"\(mean over classes\) but 100 % under a renumbering .*rows labelled 1 "
                                         r"are what the teacher calls 0 \('alarm'\)"):
        trainer.train()
    assert trainer.state.global_step == 0
    assert not os.path.exists(tmp_path / "out" / "layer_map.json")


def test_labels_in_the_teachers_order_train(tmp_path):
    trainer = trainer_for(tmp_path, make_token_rows(64, seed=2), rule_teacher())
    trainer.train()
    assert trainer.state.global_step == 1


def test_an_untrained_teacher_is_not_taken_for_a_renumbering(tmp_path):
    trainer = trainer_for(tmp_path, make_token_rows(64, seed=2), tiny_bert(num_layers=4, seed=0))
    trainer.train()
    assert trainer.state.global_step == 1


@pytest.mark.parametrize("field,value,message", [
    ("temperature", 1e300, r"temperature must be in \(0, 1000\], got 1e\+300"),
    ("beta", 1e30, r"beta must be in \[0, 10000\], got 1e\+30"),
])
def test_loss_weights_that_overflow_float32_are_refused(tmp_path, field, value, message):
    with pytest.raises(ValueError, match=message):
        small_config(tmp_path, **{field: value})


def test_an_infinite_gradient_norm_stops_training(tmp_path):
    from hf_spectralkd.guards import NonFiniteLossError

    trainer = trainer_for(tmp_path, make_token_rows(32, seed=2), tiny_bert(num_layers=4, seed=0))
    trainer.state.global_step = 1
    with pytest.raises(NonFiniteLossError, match=r"the gradient norm is inf at step 1"):
        trainer.log({"loss": 1.0, "grad_norm": float("inf")})
