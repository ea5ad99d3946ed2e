"""Every head the trainer distils (docs/method.md, "Heads"; docs/tasks.md): the KD term equals a hand-computed
reference, the CE term equals the model's own loss, a short run trains, ``return_outputs`` gives the student's own
output object, and the heads it does not distil are refused at construction with the supported list.

One table of cases (PEFT style): adding a head is adding a row."""

import math

import pytest
import torch
from conftest import VOCAB, small_config
from datasets import Dataset

from hf_spectralkd import SpectralDistillationTrainer
from hf_spectralkd.adapters.heads import DataCollatorForTokenDistillation, UnsupportedHeadError

TAU = 2.0
NUM_LABELS = 5


def bert_config(num_layers, hidden, **kwargs):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=num_layers, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=64, hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, **kwargs,
    )


def bert(cls_name, num_layers, hidden, seed, **kwargs):
    import transformers

    torch.manual_seed(seed)
    return getattr(transformers, cls_name)(bert_config(num_layers, hidden, **kwargs))


def gpt2(num_layers, hidden, seed, vocab=VOCAB):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=vocab, n_embd=hidden, n_layer=num_layers, n_head=2, n_positions=64,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(config)


def _ids(g, length):
    return torch.randint(5, VOCAB, (length,), generator=g).tolist()


def rows_for(head, n=8, seed=0):
    """Rows of variable length (so padding matters) with the head's labels."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for i in range(n):
        length = 4 + i % 5
        ids = _ids(g, length)
        row = {"input_ids": ids, "attention_mask": [1] * length}
        if head in ("sequence-classification",):
            row["labels"] = ids[0] % NUM_LABELS
        elif head == "regression":
            row["labels"] = float(ids[0]) / VOCAB
        elif head == "multi-label":
            row["labels"] = [float((ids[0] >> k) & 1) for k in range(NUM_LABELS)]
        elif head == "token-classification":
            # -100 on the first position (a special token) and on every third one (non-first sub-words)
            row["labels"] = [-100 if (j == 0 or j % 3 == 2) else t % NUM_LABELS for j, t in enumerate(ids)]
        elif head == "masked-lm":
            row["labels"] = [t if j % 2 == 1 else -100 for j, t in enumerate(ids)]
        elif head == "causal-lm":
            row["labels"] = list(ids)
        elif head == "question-answering":
            row["start_positions"] = 1 + i % (length - 2)
            row["end_positions"] = min(length - 1, row["start_positions"] + 1)
        rows.append(row)
    return rows


def mc_rows(n=6, choices=3, length=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        {"input_ids": [_ids(g, length) for _ in range(choices)], "attention_mask": [[1] * length] * choices,
         "labels": i % choices}
        for i in range(n)
    ]


def collate(features):
    """Right padding: ids with 0, masks with 0, per-token labels with -100."""
    length = max(len(f["input_ids"]) for f in features)
    out = {
        "input_ids": torch.tensor([f["input_ids"] + [0] * (length - len(f["input_ids"])) for f in features]),
        "attention_mask": torch.tensor([f["attention_mask"] + [0] * (length - len(f["attention_mask"]))
                                        for f in features]),
    }
    for key in ("start_positions", "end_positions", "example_id"):
        if key in features[0]:
            out[key] = torch.tensor([f[key] for f in features])
    if "labels" in features[0]:
        labels = [f["labels"] for f in features]
        if isinstance(labels[0], list) and len(labels[0]) == len(features[0]["input_ids"]) and not isinstance(
                labels[0][0], float):
            out["labels"] = torch.tensor([x + [-100] * (length - len(x)) for x in labels])
        else:
            out["labels"] = torch.tensor(labels)
    if "kd_mask" in features[0]:
        out["kd_mask"] = torch.tensor([f["kd_mask"] + [0] * (length - len(f["kd_mask"])) for f in features])
    return out


def mc_collate(features):
    return {k: torch.tensor([f[k] for f in features]) for k in features[0]}


# ---------------------------------------------------------------- independent references (float64, by loops)
def kl(p_logits, q_logits, tau):
    """KL(softmax(p/τ) ‖ softmax(q/τ)) of two 1-D logit vectors, written out."""
    p = torch.softmax(p_logits.double() / tau, -1)
    q = torch.softmax(q_logits.double() / tau, -1)
    return float((p * (p.log() - q.log())).sum())


def ref_rows(s, t, batch):
    return TAU**2 * sum(kl(t[i], s[i], TAU) for i in range(len(s))) / len(s)


def ref_positions(s, t, batch, shift=False):
    labels = batch["labels"]
    if shift:
        s, t, labels = s[:, :-1], t[:, :-1], labels[:, 1:]
    values = [kl(t[i, j], s[i, j], TAU) for i in range(labels.shape[0]) for j in range(labels.shape[1])
              if labels[i, j] != -100]
    return TAU**2 * sum(values) / len(values)


def ref_qa(s_out, t_out, batch):
    total = 0.0
    mask = batch["attention_mask"].bool()
    for i in range(mask.shape[0]):
        real = mask[i]
        for name in ("start_logits", "end_logits"):
            total += kl(getattr(t_out, name)[i][real], getattr(s_out, name)[i][real], TAU) / 2
    return TAU**2 * total / mask.shape[0]


def ref_regression(s, t, batch):
    return float(((s.double() - t.double()) ** 2).mean())


def ref_multilabel(s, t, batch):
    total, count = 0.0, 0
    for i in range(s.shape[0]):
        for c in range(s.shape[1]):
            p = 1 / (1 + math.exp(-float(t[i, c]) / TAU))
            q = 1 / (1 + math.exp(-float(s[i, c]) / TAU))
            total += p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))
            count += 1
    return TAU**2 * total / count


# name: (teacher builder, student builder, rows, collator, reference KD(student out, teacher out, batch), output class)
CASES = {
    "sequence-classification": (
        lambda: bert("BertForSequenceClassification", 4, 32, 0, num_labels=NUM_LABELS),
        lambda: bert("BertForSequenceClassification", 2, 16, 1, num_labels=NUM_LABELS),
        lambda: rows_for("sequence-classification"), collate,
        lambda s, t, b: ref_rows(s.logits, t.logits, b), "SequenceClassifierOutput",
    ),
    "regression": (
        lambda: bert("BertForSequenceClassification", 4, 32, 0, num_labels=1),
        lambda: bert("BertForSequenceClassification", 2, 16, 1, num_labels=1),
        lambda: rows_for("regression"), collate,
        lambda s, t, b: ref_regression(s.logits, t.logits, b), "SequenceClassifierOutput",
    ),
    "multi-label-classification": (
        lambda: bert("BertForSequenceClassification", 4, 32, 0, num_labels=NUM_LABELS,
                     problem_type="multi_label_classification"),
        lambda: bert("BertForSequenceClassification", 2, 16, 1, num_labels=NUM_LABELS,
                     problem_type="multi_label_classification"),
        lambda: rows_for("multi-label"), collate,
        lambda s, t, b: ref_multilabel(s.logits, t.logits, b), "SequenceClassifierOutput",
    ),
    "multiple-choice": (
        lambda: bert("BertForMultipleChoice", 4, 32, 0),
        lambda: bert("BertForMultipleChoice", 2, 16, 1),
        mc_rows, mc_collate,
        lambda s, t, b: ref_rows(s.logits, t.logits, b), "MultipleChoiceModelOutput",
    ),
    "token-classification": (
        lambda: bert("BertForTokenClassification", 4, 32, 0, num_labels=NUM_LABELS),
        lambda: bert("BertForTokenClassification", 2, 16, 1, num_labels=NUM_LABELS),
        lambda: rows_for("token-classification"), collate,
        lambda s, t, b: ref_positions(s.logits, t.logits, b), "TokenClassifierOutput",
    ),
    "question-answering": (
        lambda: bert("BertForQuestionAnswering", 4, 32, 0),
        lambda: bert("BertForQuestionAnswering", 2, 16, 1),
        lambda: rows_for("question-answering"), collate,
        ref_qa, "QuestionAnsweringModelOutput",
    ),
    "masked-lm": (
        lambda: bert("BertForMaskedLM", 4, 32, 0),
        lambda: bert("BertForMaskedLM", 2, 16, 1),
        lambda: rows_for("masked-lm"), collate,
        lambda s, t, b: ref_positions(s.logits, t.logits, b), "MaskedLMOutput",
    ),
    "causal-lm": (
        lambda: gpt2(4, 32, 0),
        lambda: gpt2(2, 16, 1),
        lambda: rows_for("causal-lm"), collate,
        lambda s, t, b: ref_positions(s.logits, t.logits, b, shift=True), "CausalLMOutputWithCrossAttentions",
    ),
}


def confident(model, scale=30.0):
    """A random head predicts near-uniform distributions; scaled, its KD values are far from rounding error."""
    layer = getattr(model, "classifier", None) or getattr(model, "qa_outputs", None) or model.get_output_embeddings()
    with torch.no_grad():
        layer.weight.mul_(scale)
    return model


def build(tmp_path, name, **config):
    teacher_fn, student_fn, rows_fn, collator, _, _ = CASES[name]
    values = dict(spectral_dynamics=False, temperature=TAU, include_embeddings=False)
    values.update(config)
    return SpectralDistillationTrainer(
        model=student_fn(), teacher_model=confident(teacher_fn()), args=small_config(tmp_path, **values),
        train_dataset=Dataset.from_list(rows_fn()), data_collator=collator,
    ), collator(rows_fn())


def own_outputs(model, batch):
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "start_positions", "end_positions", "kd_mask")}
    with torch.no_grad():
        return model(**inputs)


@pytest.mark.parametrize("name", list(CASES))
def test_kd_term_equals_the_hand_computed_reference(tmp_path, name):
    trainer, batch = build(tmp_path, name, alpha=1.0, beta=0.0)
    assert trainer.student_head.name == name
    trainer.model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, dict(batch))
    expected = CASES[name][4](own_outputs(trainer.model, batch), own_outputs(trainer.teacher, batch), batch)
    assert expected > 1e-4  # teacher and student differ: the check is not 0 == 0
    assert float(loss) == pytest.approx(expected, rel=1e-4)
    assert trainer._reduce_metrics("eval")["kd_loss"] == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("name", list(CASES))
def test_ce_term_is_the_models_own_loss(tmp_path, name):
    trainer, batch = build(tmp_path, name, alpha=0.0, beta=0.0)
    trainer.model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, dict(batch))
        own = trainer.model(**{k: v for k, v in batch.items() if k != "kd_mask"}).loss
    assert float(loss) == pytest.approx(float(own), rel=1e-4)


@pytest.mark.parametrize("name", list(CASES))
def test_return_outputs_gives_the_students_own_output_without_hidden_states(tmp_path, name):
    trainer, batch = build(tmp_path, name, alpha=0.5, beta=0.2)
    trainer.model.eval()
    with torch.no_grad():
        _, outputs = trainer.compute_loss(trainer.model, dict(batch), return_outputs=True)
    assert type(outputs).__name__ == CASES[name][5]
    assert getattr(outputs, "hidden_states", None) is None and "loss" not in outputs
    reference = own_outputs(trainer.model, batch)
    key = "start_logits" if name == "question-answering" else "logits"
    torch.testing.assert_close(outputs[key], reference[key])


@pytest.mark.parametrize("name", list(CASES))
def test_a_short_run_trains_every_term(tmp_path, name):
    trainer, _ = build(tmp_path, name, alpha=0.5, beta=0.2, max_steps=3, per_device_train_batch_size=4)
    trainer.train()
    logs = [entry for entry in trainer.state.log_history if "kd_loss" in entry]
    assert len(logs) == 3
    for entry in logs:
        assert math.isfinite(entry["loss"]) and entry["kd_loss"] > 0 and entry["freq_loss"] > 0
        assert entry["ce_loss"] > 0
    assert trainer.layer_map is not None and len(trainer.layer_map.pairs) == 2


# ---------------------------------------------------------------- token classification: positions that count
def test_token_transfer_rows_count_their_kd_mask_positions_only(tmp_path):
    rows = rows_for("token-classification", n=6, seed=2)
    for row in rows[:3]:  # unlabelled transfer rows: labels all -100, kd_mask on "word starts"
        row["labels"] = [-100] * len(row["input_ids"])
        row["kd_mask"] = [0] + [1 if j % 2 else 0 for j in range(1, len(row["input_ids"]))]
    for row in rows[3:]:
        row["kd_mask"] = [int(label != -100) for label in row["labels"]]
    alpha = 0.6
    teacher_fn, student_fn, _, _, _, _ = CASES["token-classification"]
    trainer = SpectralDistillationTrainer(
        model=student_fn(), teacher_model=teacher_fn(),
        args=small_config(tmp_path, alpha=alpha, beta=0.0, temperature=TAU, spectral_dynamics=False),
        train_dataset=Dataset.from_list(rows), data_collator=collate,
    )
    trainer.model.eval()
    batch = collate(rows)
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, dict(batch))
    s, t = own_outputs(trainer.model, batch).logits, own_outputs(trainer.teacher, batch).logits
    kd = [kl(t[i, j], s[i, j], TAU) for i in range(len(rows)) for j in range(s.shape[1])
          if batch["kd_mask"][i, j] == 1]
    ce = [float(-torch.log_softmax(s[i, j].double(), -1)[batch["labels"][i, j]])
          for i in range(len(rows)) for j in range(s.shape[1]) if batch["labels"][i, j] != -100]
    expected = (1 - alpha) * sum(ce) / len(ce) + alpha * TAU**2 * sum(kd) / len(kd)
    assert len(kd) > len(ce)  # the transfer rows add KD positions, no CE
    assert float(loss) == pytest.approx(expected, rel=1e-4)


def test_a_token_classifier_whose_length_equals_its_label_count_takes_ce_per_token(tmp_path):
    """The old trainer took F.cross_entropy over the sequence axis when L == num_labels, silently."""
    rows = [dict(r, input_ids=r["input_ids"][:4] + [7] * (NUM_LABELS - 4))
            for r in rows_for("sequence-classification")]
    for row in rows:
        row["attention_mask"] = [1] * NUM_LABELS
        row["labels"] = [t % NUM_LABELS for t in row["input_ids"]]
    teacher_fn, student_fn, _, _, _, _ = CASES["token-classification"]
    trainer = SpectralDistillationTrainer(
        model=student_fn(), teacher_model=teacher_fn(),
        args=small_config(tmp_path, alpha=0.0, beta=0.0, spectral_dynamics=False),
        train_dataset=Dataset.from_list(rows), data_collator=collate,
    )
    trainer.model.eval()
    batch = collate(rows)
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, dict(batch))
        own = trainer.model(**batch).loss
    assert float(loss) == pytest.approx(float(own), rel=1e-5)


def test_token_collator_pads_kd_mask_with_zeros():
    from transformers import BertTokenizerFast

    tokenizer = BertTokenizerFast(vocab_file=None, tokenizer_object=_word_tokenizer())
    collator = DataCollatorForTokenDistillation(tokenizer)
    batch = collator([
        {"input_ids": [2, 5, 6], "attention_mask": [1, 1, 1], "labels": [-100, 1, 2], "kd_mask": [0, 1, 1]},
        {"input_ids": [2, 5], "attention_mask": [1, 1], "labels": [-100, -100], "kd_mask": [0, 1]},
    ])
    assert batch["kd_mask"].tolist() == [[0, 1, 1], [0, 1, 0]]
    assert batch["labels"].tolist() == [[-100, 1, 2], [-100, -100, -100]]
    assert batch["input_ids"].shape == (2, 3)


def _word_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "a": 5, "b": 6}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def test_token_teacher_cache_gives_the_live_teachers_terms(tmp_path):
    rows = rows_for("token-classification", n=8, seed=5)
    teacher_fn, student_fn, _, _, _, _ = CASES["token-classification"]
    terms = {}
    for mode in ("live", "cached"):
        trainer = SpectralDistillationTrainer(
            model=student_fn(), teacher_model=teacher_fn(),
            args=small_config(tmp_path / mode, alpha=0.5, beta=0.2, temperature=TAU, spectral_dynamics=False,
                              teacher_layers=[2, 4]),
            train_dataset=Dataset.from_list(rows), data_collator=collate,
            teacher_cache=str(tmp_path / "cache") if mode == "cached" else None,
        )
        trainer.setup_teacher_cache()
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(8)])  # the ids: only in the cached run
        assert ("example_id" in batch) == (mode == "cached")
        trainer.model.train()
        with torch.no_grad():
            trainer.compute_loss(trainer.model, dict(batch))
        terms[mode] = {k: float(v[-1]) for k, v in trainer._metrics["train"].items()}
    assert trainer.teacher_cache.per_token and trainer.teacher_cache.logits.shape[0] == sum(
        len(r["input_ids"]) for r in rows)
    for key in ("ce_loss", "kd_loss", "freq_loss"):  # float16 storage: close, not equal
        assert terms["cached"][key] == pytest.approx(terms["live"][key], rel=2e-3, abs=1e-4)


# ---------------------------------------------------------------- refused at construction
def refused(tmp_path, student, teacher, match, **config):
    with pytest.raises(ValueError, match=match):
        SpectralDistillationTrainer(model=student, teacher_model=teacher, args=small_config(tmp_path, **config),
                                    train_dataset=Dataset.from_list(rows_for("sequence-classification")))
    assert not (tmp_path / "out").exists()


def test_seq2seq_models_are_refused_naming_class_and_supported_heads(tmp_path):
    from transformers import BartConfig, BartForConditionalGeneration

    config = BartConfig(vocab_size=VOCAB, d_model=16, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                        decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
                        max_position_embeddings=64)
    model = BartForConditionalGeneration(config)
    with pytest.raises(UnsupportedHeadError, match=r"BartForConditionalGeneration is a sequence-to-sequence .*"
                                                   r"Supported heads: sequence-classification, .*causal-lm"):
        SpectralDistillationTrainer(model=model, teacher_model=model, args=small_config(tmp_path))


def test_a_bare_encoder_is_refused(tmp_path):
    model = bert("BertModel", 2, 16, 0)
    refused(tmp_path, model, bert("BertForSequenceClassification", 4, 32, 0), r"BertModel is a bare model without a "
            r"head \(no logits to distil\)\. Supported heads: sequence-classification")


def test_teacher_and_student_heads_must_match(tmp_path):
    refused(tmp_path, bert("BertForSequenceClassification", 2, 16, 1, num_labels=NUM_LABELS),
            bert("BertForTokenClassification", 4, 32, 0, num_labels=NUM_LABELS),
            r"different heads: the teacher BertForTokenClassification is a token-classification model, the student "
            r"BertForSequenceClassification a sequence-classification model")


def test_causal_lm_students_must_share_the_teachers_vocabulary(tmp_path):
    refused(tmp_path, gpt2(2, 16, 1, vocab=VOCAB + 8), gpt2(4, 32, 0),
            rf"vocab_size is {VOCAB} for the teacher and {VOCAB + 8} for the student\. The KD term of a "
            r"language-model head compares distributions over the vocabulary")


def test_regression_refuses_softmax_only_options(tmp_path):
    refused(tmp_path, bert("BertForSequenceClassification", 2, 16, 1, num_labels=1),
            bert("BertForSequenceClassification", 4, 32, 0, num_labels=1),
            r"label_smoothing_factor is set but the student BertForSequenceClassification is a regression model",
            label_smoothing_factor=0.1)


def test_a_wrongly_shaped_label_batch_is_a_clear_error(tmp_path):
    """A user's own class guessed as a sequence classifier, fed per-token labels: named, not a torch error."""
    trainer, batch = build(tmp_path, "sequence-classification", alpha=0.5, beta=0.0)
    batch["labels"] = torch.zeros_like(batch["input_ids"])
    with pytest.raises(ValueError, match=r"taken as a sequence-classification model, but the labels have shape"):
        trainer.compute_loss(trainer.model, batch)


def test_a_saved_token_classifier_given_by_path_loads_with_its_own_head(tmp_path):
    teacher, student = bert("BertForTokenClassification", 4, 32, 0, num_labels=NUM_LABELS), \
        bert("BertForTokenClassification", 2, 16, 1, num_labels=NUM_LABELS)
    teacher.save_pretrained(tmp_path / "teacher")
    student.save_pretrained(tmp_path / "student")
    trainer = SpectralDistillationTrainer(
        model=str(tmp_path / "student"), teacher_model=str(tmp_path / "teacher"),
        args=small_config(tmp_path, beta=0.0, spectral_dynamics=False),
        train_dataset=Dataset.from_list(rows_for("token-classification")), data_collator=collate,
    )
    assert type(trainer.model).__name__ == type(trainer.teacher).__name__ == "BertForTokenClassification"
    assert trainer.student_head.name == "token-classification"


def test_a_lora_token_classifier_gets_peft_s_token_task_type(tmp_path):
    from peft import LoraConfig

    trainer = SpectralDistillationTrainer(
        model=CASES["token-classification"][1](), teacher_model=CASES["token-classification"][0](),
        args=small_config(tmp_path, beta=0.2, max_steps=2, spectral_dynamics=False),
        train_dataset=Dataset.from_list(rows_for("token-classification")), data_collator=collate,
        peft_config=LoraConfig(r=4, target_modules=["query", "value"]),
    )
    assert str(trainer.model.peft_config["default"].task_type) in ("TOKEN_CLS", "TaskType.TOKEN_CLS")
    trainer.train()
    assert trainer.state.global_step == 2


@pytest.mark.parametrize("name,tag", [("token-classification", "token-classification"),
                                      ("question-answering", "question-answering"),
                                      ("causal-lm", "text-generation"), ("regression", "text-classification")])
def test_results_of_a_trainer_name_the_heads_task(tmp_path, name, tag):
    from hf_spectralkd.results import results_from_trainer

    trainer, _ = build(tmp_path, name, beta=0.0)
    assert results_from_trainer(trainer).task == tag


def test_a_base_checkpoint_given_by_path_becomes_a_student_with_the_teachers_head(tmp_path):
    """A base encoder (config names BertModel) or a masked-LM checkpoint passed as a path, as before heads existed."""
    teacher = bert("BertForSequenceClassification", 4, 32, 0, num_labels=NUM_LABELS)
    bert("BertModel", 2, 32, 1).save_pretrained(tmp_path / "base")
    bert("BertForMaskedLM", 2, 32, 1).save_pretrained(tmp_path / "mlm")
    for folder in ("base", "mlm"):
        trainer = SpectralDistillationTrainer(
            model=str(tmp_path / folder), teacher_model=teacher,
            args=small_config(tmp_path / f"run_{folder}", beta=0.0, spectral_dynamics=False),
            train_dataset=Dataset.from_list(rows_for("sequence-classification")), data_collator=collate,
        )
        assert type(trainer.model).__name__ == "BertForSequenceClassification", folder


def test_a_subclass_of_a_transformers_head_is_that_head(tmp_path):
    import transformers

    class MyTagger(transformers.BertForTokenClassification):
        pass

    torch.manual_seed(1)
    student = MyTagger(bert_config(2, 16, num_labels=NUM_LABELS))
    trainer = SpectralDistillationTrainer(
        model=student, teacher_model=CASES["token-classification"][0](),
        args=small_config(tmp_path, beta=0.0, spectral_dynamics=False),
        train_dataset=Dataset.from_list(rows_for("token-classification")), data_collator=collate,
    )
    assert trainer.student_head.name == "token-classification"


@pytest.mark.parametrize("temperature", [0.5, 0.9])
def test_qa_kd_is_finite_below_temperature_one_with_padding(tmp_path, temperature):
    trainer, batch = build(tmp_path, "question-answering", alpha=1.0, beta=0.0, temperature=temperature)
    assert batch["attention_mask"].min() == 0  # padded rows present
    trainer.model.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, dict(batch))
    s, t = own_outputs(trainer.model, batch), own_outputs(trainer.teacher, batch)
    mask = batch["attention_mask"].bool()
    expected = sum(kl(getattr(t, k)[i][mask[i]], getattr(s, k)[i][mask[i]], temperature) / 2
                   for i in range(mask.shape[0]) for k in ("start_logits", "end_logits")) * temperature**2 / len(mask)
    assert math.isfinite(float(loss)) and float(loss) == pytest.approx(expected, rel=1e-4)


def test_a_lora_multiple_choice_student_trains_its_choice_head(tmp_path):
    from peft import LoraConfig

    trainer = SpectralDistillationTrainer(
        model=CASES["multiple-choice"][1](), teacher_model=CASES["multiple-choice"][0](),
        args=small_config(tmp_path, beta=0.0, spectral_dynamics=False),
        train_dataset=Dataset.from_list(mc_rows()), data_collator=mc_collate,
        peft_config=LoraConfig(r=4, target_modules=["query", "value"]),
    )
    trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad and "lora" not in n]
    assert any("classifier" in n for n in trainable), trainable


@pytest.mark.parametrize("name", ["causal-lm", "multiple-choice"])
def test_a_teacher_cache_for_a_head_it_cannot_store_is_refused_at_construction(tmp_path, name):
    teacher_fn, student_fn, rows_fn, collator, _, _ = CASES[name]
    with pytest.raises(ValueError, match=rf"the teacher cache (does not store a {name} teacher|stores one token "
                                         r"sequence per example).*train without teacher_cache"):
        SpectralDistillationTrainer(
            model=student_fn(), teacher_model=teacher_fn(), args=small_config(tmp_path, spectral_dynamics=False),
            train_dataset=Dataset.from_list(rows_fn()), data_collator=collator, teacher_cache=str(tmp_path / "c"),
        )
    assert not (tmp_path / "c").exists() and not (tmp_path / "out").exists()
