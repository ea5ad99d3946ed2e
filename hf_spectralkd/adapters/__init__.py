"""Model adapters behind a small registry (PEFT style): the trainer never branches on model family.

An adapter knows how to run one family of models so that the trainer gets logits and per-layer features
laid out like HF ``hidden_states``: index 0 is the embedding output, index ``l`` the output of block ``l``.
Adapters register themselves by name at import time; :func:`get_adapter` picks the first that matches a
model (checked in registration order, the generic HF adapter last).
"""

from .base import ADAPTER_REGISTRY, AdapterOutput, ModelAdapter, get_adapter, register_adapter, unwrap_model

__all__ = ["AdapterOutput", "ModelAdapter", "ADAPTER_REGISTRY", "register_adapter", "get_adapter", "unwrap_model"]

# Register the built-in adapters (import order does not matter: `priority` decides).
from . import hf  # noqa: E402,F401

try:  # the timm adapter needs the `vision` extra
    from . import timm as _timm  # noqa: E402,F401
except ImportError:  # pragma: no cover - timm not installed
    pass
