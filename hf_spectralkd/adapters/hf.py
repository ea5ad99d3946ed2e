"""Adapter for Hugging Face ``transformers`` classifiers (BERT, RoBERTa, DistilBERT, ... and PEFT wraps)."""

from __future__ import annotations

from ..guards import check_attention_mask
from .base import AdapterOutput, ModelAdapter, register_adapter, unwrap_model


def _config(model):
    base = unwrap_model(model, peft=True)
    return getattr(base, "config", None)


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

    def forward(self, model, inputs: dict, output_hidden_states: bool = True) -> AdapterOutput:
        model_inputs = {k: v for k, v in inputs.items() if k not in ("labels", "label")}
        outputs = model(**model_inputs, output_hidden_states=output_hidden_states, return_dict=True)
        hidden = getattr(outputs, "hidden_states", None)
        if output_hidden_states and hidden is None:
            raise ValueError(
                f"{type(unwrap_model(model)).__name__} did not return hidden_states with output_hidden_states=True; "
                "SpectralKD needs a model that exposes its per-layer hidden states"
            )
        mask = inputs.get("attention_mask")
        if hidden is not None:  # a mask of another shape would be broadcast by the alignment loss, not fail
            check_attention_mask(mask, hidden[-1], type(unwrap_model(model)).__name__)
        return AdapterOutput(logits=outputs.logits, hidden_states=hidden, attention_mask=mask)

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

    def describe(self, model) -> dict:
        config = _config(model)
        return {
            "num_layers": self.num_layers(model),
            "hidden_size": getattr(config, "hidden_size", None) or getattr(config, "dim", None),
            "num_parameters": sum(p.numel() for p in model.parameters()),
            "model_type": getattr(config, "model_type", None),
        }
