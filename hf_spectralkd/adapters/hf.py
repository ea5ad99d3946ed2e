"""Adapter for Hugging Face ``transformers`` classifiers (BERT, RoBERTa, DistilBERT, ... and PEFT wraps)."""

from __future__ import annotations

import copy
from functools import lru_cache

from ..constants import EXAMPLE_ID_KEY, KD_MASK_COLUMN
from ..guards import check_attention_mask
from . import heads
from .base import AdapterOutput, ModelAdapter, register_adapter, unwrap_model
from .blocks import check_block_indices, copy_block_weights

# the config values a student built from the teacher's blocks keeps (the copied weights must fit)
WIDTH_KEYS = ("hidden_size", "num_attention_heads", "intermediate_size")
# batch keys that are targets or distillation metadata (the teacher cache's example ids), never model inputs
NON_INPUT_KEYS = ("labels", "label", "start_positions", "end_positions", KD_MASK_COLUMN, EXAMPLE_ID_KEY)

# transformers' auto-class tables (model_type -> class name) of each head the trainer distils; a class of none of
# them is recognised by its name's suffix (a user's own model)
_HEAD_TABLES = (
    ("MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES", "ForTokenClassification", heads.TokenClassificationHead),
    ("MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES", "ForQuestionAnswering", heads.QuestionAnsweringHead),
    ("MODEL_FOR_MULTIPLE_CHOICE_MAPPING_NAMES", "ForMultipleChoice", heads.MultipleChoiceHead),
    ("MODEL_FOR_MASKED_LM_MAPPING_NAMES", "ForMaskedLM", heads.MaskedLMHead),
    ("MODEL_FOR_CAUSAL_LM_MAPPING_NAMES", "ForCausalLM", heads.CausalLMHead),
    ("MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES", "ForSequenceClassification",
     heads.SequenceClassificationHead),
)
# heads refused with a reason: no per-token hidden states of one stack, or no logits to distil
_REFUSED_SUFFIXES = {
    "ForConditionalGeneration": "a sequence-to-sequence model (encoder and decoder hidden states, generated targets)",
    "ForSeq2SeqLM": "a sequence-to-sequence model",
    "ForPreTraining": "a pre-training model with several heads",
    "ForNextSentencePrediction": "a next-sentence-prediction head",
}


@lru_cache(maxsize=1)
def _head_classes() -> dict:
    from transformers.models.auto import modeling_auto

    table = {}
    for names in modeling_auto.MODEL_MAPPING_NAMES.values():  # bare encoders (BertModel, ...): no head
        for name in (names,) if isinstance(names, str) else names:
            table[name] = None
    for mapping_name, _, head in _HEAD_TABLES:
        for names in getattr(modeling_auto, mapping_name, {}).values():
            for name in (names,) if isinstance(names, str) else names:
                if table.get(name) is None:
                    table[name] = head
    return table


def head_for_class(cls_name: str, config) -> heads.Head:
    """The head of a transformers class (refused with the reason where the trainer does not distil it)."""
    supported = ", ".join(heads.SUPPORTED_HEADS)
    if getattr(config, "is_encoder_decoder", False):
        raise heads.UnsupportedHeadError(
            f"{cls_name} is a sequence-to-sequence (encoder-decoder) model, which SpectralDistillationTrainer "
            f"does not distil: its hidden states come from two stacks (encoder and decoder), which the layer "
            f"pairing and the alignment term are not defined for. Supported heads: {supported}"
        )
    table = _head_classes()
    if cls_name in table and table[cls_name] is None:
        raise heads.UnsupportedHeadError(
            f"{cls_name} is a bare model without a head (no logits to distil). Supported heads: {supported} (load "
            "the model with the matching AutoModelFor... class)"
        )
    head = table.get(cls_name)
    if head is None:
        head = next((h for _, suffix, h in _HEAD_TABLES if cls_name.endswith(suffix)), None)
    if head is None:
        reason = next((r for suffix, r in _REFUSED_SUFFIXES.items() if cls_name.endswith(suffix)), None)
        if reason is not None:
            raise heads.UnsupportedHeadError(
                f"{cls_name} is {reason}, which SpectralDistillationTrainer does not distil. Supported heads: "
                f"{supported} (load the model with the matching AutoModelFor... class)"
            )
        # a user's own classifier: a (batch, classes) head, checked on every batch (a wrong guess fails clearly)
        head = heads.SequenceClassificationHead
    if head is heads.SequenceClassificationHead:
        problem = getattr(config, "problem_type", None)
        if problem == "regression" or (problem is None and getattr(config, "num_labels", None) == 1):
            head = heads.RegressionHead
        elif problem == "multi_label_classification":
            head = heads.MultiLabelClassificationHead
    return head()


def _config(model):
    base = unwrap_model(model, peft=True)
    return getattr(base, "config", None)


def head_of_reference(location: str, strict: bool = False, **config_options) -> heads.Head | None:
    """The head of a saved model (a local directory or Hub id) from its config's ``architectures``, before loading
    it: a fine-tuned token classifier loads with ``AutoModelForTokenClassification``, and so on. A checkpoint whose
    config names no head the trainer distils (a base encoder, a pre-training head) is taken as a sequence
    classifier to be given a fresh head, as before heads existed (``strict=True``: None then)."""
    from transformers import AutoConfig

    fallback = None if strict else heads.SequenceClassificationHead()
    try:
        config = AutoConfig.from_pretrained(location, **config_options)
    except (OSError, ValueError):
        return fallback  # the loader reports the real problem
    architectures = getattr(config, "architectures", None) or []
    try:
        return head_for_class(architectures[0], config) if architectures else fallback
    except heads.UnsupportedHeadError:
        if getattr(config, "is_encoder_decoder", False):
            raise
        return fallback


@register_adapter("transformers")
class TransformersAdapter(ModelAdapter):
    priority = 0  # generic fallback: more specific adapters win
    input_names = ("input_ids", "attention_mask", "token_type_ids", "position_ids")

    @classmethod
    def matches(cls, model) -> bool:
        from transformers import PreTrainedModel

        if isinstance(model, PreTrainedModel):
            return True
        # a PEFT model wrapping a transformers model
        return hasattr(model, "peft_config") and _config(model) is not None

    def head(self, model) -> heads.Head:
        base = unwrap_model(model, peft=True)
        # the first class of the model's ancestry that transformers knows (a user's
        # MyTagger(BertForTokenClassification) is a token classifier); otherwise the model's own class name
        known = _head_classes()
        name = next((c.__name__ for c in type(base).__mro__ if c.__name__ in known), type(base).__name__)
        return head_for_class(name, getattr(base, "config", None))

    def forward(self, model, inputs: dict, output_hidden_states: bool = True, head: heads.Head | None = None
                ) -> AdapterOutput:
        model_inputs = {k: v for k, v in inputs.items() if k not in NON_INPUT_KEYS}
        head = head or self.head(model)
        if head.name == "causal-lm":  # no KV cache: nothing generates here, and a teacher's would be kept alive
            model_inputs.setdefault("use_cache", False)
        outputs = model(**model_inputs, output_hidden_states=output_hidden_states, return_dict=True)
        hidden = getattr(outputs, "hidden_states", None)
        if output_hidden_states and hidden is None:
            raise ValueError(
                f"{type(unwrap_model(model)).__name__} did not return hidden_states with output_hidden_states=True; "
                "SpectralKD needs a model that exposes its per-layer hidden states"
            )
        mask = inputs.get("attention_mask")
        ids = inputs.get("input_ids")
        if mask is not None and hidden is not None and ids is not None and ids.dim() == 3 == mask.dim():
            # multiple choice: (batch, choices, tokens) inputs run as batch x choices sequences
            mask = mask.reshape(-1, mask.shape[-1])
        if hidden is not None:  # a mask of another shape would be broadcast by the alignment loss, not fail
            check_attention_mask(mask, hidden[-1], type(unwrap_model(model)).__name__)
        logits = head.logits(outputs)
        return AdapterOutput(logits=logits, hidden_states=hidden, attention_mask=mask, outputs=outputs)

    def num_layers(self, model) -> int:
        config = _config(model)
        for attr in ("num_hidden_layers", "n_layers", "num_layers", "n_layer"):
            value = getattr(config, attr, None)
            if isinstance(value, int):
                return value
        raise ValueError(f"cannot tell the number of layers of {type(unwrap_model(model)).__name__} from its config")

    def num_labels(self, model):
        return getattr(_config(model), "num_labels", None)

    def id2label(self, model):
        mapping = getattr(_config(model), "id2label", None)
        return {int(k): str(v) for k, v in mapping.items()} if mapping else None

    def vocabulary(self, model):
        config = _config(model)
        return {
            "vocab_size": getattr(config, "vocab_size", None),
            "pad_token_id": getattr(config, "pad_token_id", None),
        }

    def hidden_size(self, model) -> int | None:
        config = _config(model)
        return getattr(config, "hidden_size", None) or getattr(config, "dim", None)

    def describe(self, model) -> dict:
        config = _config(model)
        return {
            "num_layers": self.num_layers(model),
            "hidden_size": self.hidden_size(model),
            "num_parameters": sum(p.numel() for p in model.parameters()),
            "model_type": getattr(config, "model_type", None),
        }

    def attention_heads(self, model) -> int | None:
        config = _config(model)
        for attr in ("num_attention_heads", "n_heads", "n_head"):
            value = getattr(config, attr, None)
            if isinstance(value, int):
                return value
        return None

    def attention_projections(self, model, layer: int) -> tuple:
        """The query/key/value modules of block ``layer``, found by their names in the families' own code: BERT /
        RoBERTa / ELECTRA (``query``, ``key``, ``value``), MPNet (``q``, ``k``, ``v``), DistilBERT (``q_lin`` ...),
        Llama / Mistral / Qwen / OPT / BART (``q_proj`` ...), DeBERTa-v2 (``query_proj`` ...), or one fused module
        (GPT-2's ``c_attn``, ``qkv``, ``Wqkv``) whose output is ``[Q|K|V]``."""
        base = unwrap_model(model, peft=True)
        _, blocks = find_layer_list(base)
        if not 1 <= layer <= len(blocks):
            raise ValueError(f"block {layer} does not exist: {type(base).__name__} has blocks 1..{len(blocks)}")
        named = {name.rsplit(".", 1)[-1]: module for name, module in blocks[layer - 1].named_modules() if name}
        for names in ATTENTION_PROJECTION_NAMES:
            if all(n in named for n in names):
                return tuple(named[n] for n in names)
        for name in FUSED_PROJECTION_NAMES:
            if name in named:
                return named[name], None, None
        raise ValueError(
            f"alignment='attention' needs the query/key/value projections of {type(base).__name__}'s blocks, but "
            f"block {layer} has none of the known names ({', '.join('/'.join(n) for n in ATTENTION_PROJECTION_NAMES)}"
            f", or a fused {'/'.join(FUSED_PROJECTION_NAMES)}): use alignment 'mse' or 'frequency'"
        )

    def copy_blocks(self, model, init_layers, config_overrides: dict | None = None):
        """A student of the teacher's class with ``len(init_layers)`` blocks copied from the teacher (its
        ``config`` overridden by ``config_overrides``, widths excepted: the copied weights must fit)."""
        teacher = unwrap_model(model, peft=True)
        check_block_indices(init_layers, teacher.config.num_hidden_layers)
        config = copy.deepcopy(teacher.config)
        config.num_hidden_layers = len(init_layers)
        for key, value in (config_overrides or {}).items():
            if key in WIDTH_KEYS and value != getattr(config, key, None):
                raise ValueError(
                    f"student.config.{key} cannot change when copying teacher layers (the weights must fit)"
                )
            setattr(config, key, value)
        student = type(teacher)(config)
        prefix, _ = find_layer_list(teacher)
        copy_block_weights(teacher, student, prefix, init_layers)
        return student


#: (query, key, value) module names of the transformers families, in their modeling code
ATTENTION_PROJECTION_NAMES = (
    ("query", "key", "value"),
    ("q_proj", "k_proj", "v_proj"),
    ("query_proj", "key_proj", "value_proj"),
    ("q_lin", "k_lin", "v_lin"),
    ("q", "k", "v"),
)
#: one module computing [Q|K|V] (GPT-2's Conv1D c_attn, others' qkv / Wqkv)
FUSED_PROJECTION_NAMES = ("c_attn", "qkv", "Wqkv")


def find_layer_list(model):
    """``(prefix, ModuleList)`` of the transformer blocks (e.g. ``bert.encoder.layer``)."""
    import torch

    n = getattr(model.config, "num_hidden_layers", None)
    best = None
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n and n:
            if best is None or len(name) < len(best[0]):
                best = (name, module)
    if best is None:
        raise ValueError(
            f"cannot find the {n} transformer blocks of {type(model).__name__}; build the student with "
            "student.init: pretrained or config instead of teacher_layers"
        )
    return best
