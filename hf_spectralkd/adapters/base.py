"""The adapter interface, the registry and the one model-unwrapping helper (see the package docstring)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["AdapterOutput", "ModelAdapter", "ADAPTER_REGISTRY", "register_adapter", "get_adapter", "unwrap_model",
           "capture_attention_projections"]


@dataclass
class AdapterOutput:
    """What the trainer needs from one forward pass."""

    logits: torch.Tensor
    hidden_states: tuple | None  # index 0 = embeddings, l = block l; (N,L,D) tokens or (N,C,H,W) maps
    attention_mask: torch.Tensor | None = None  # (N, L) for token features, None for feature maps
    outputs: object = None  # the model's own output object (what compute_loss returns with return_outputs=True)


class ModelAdapter:
    """Base class. Subclasses implement :meth:`matches`, :meth:`forward` and :meth:`num_layers`."""

    name: str = "base"
    #: names of the batch keys the forward pass consumes (besides the labels)
    input_names: tuple = ()

    @classmethod
    def matches(cls, model) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def forward(self, model, inputs: dict, output_hidden_states: bool = True,
                head=None) -> AdapterOutput:  # pragma: no cover
        """One forward pass; ``head`` (the model's :meth:`head`, passed to save looking it up) picks the logits.
        ``inputs`` is the whole batch: pass the model its inputs only, not the labels, ``kd_mask`` or the teacher
        cache's ``example_id`` (``hf.NON_INPUT_KEYS``)."""
        raise NotImplementedError

    def num_layers(self, model) -> int:  # pragma: no cover - interface
        """Number of blocks ``n``: valid layer indices are ``1..n`` (and ``0`` for the embeddings)."""
        raise NotImplementedError

    def num_labels(self, model) -> int | None:
        return getattr(getattr(model, "config", None), "num_labels", None) or getattr(model, "num_classes", None)

    def id2label(self, model) -> dict | None:
        config = getattr(model, "config", None)
        mapping = getattr(config, "id2label", None)
        return {int(k): str(v) for k, v in mapping.items()} if mapping else None

    def head(self, model):
        """The model's :class:`~hf_spectralkd.adapters.heads.Head`: what its logits are and which positions count.
        Default: a classifier with ``(batch, classes)`` logits; raise ``UnsupportedHeadError`` for a head the trainer
        does not distil."""
        from .heads import SequenceClassificationHead

        return SequenceClassificationHead()

    def vocabulary(self, model) -> dict | None:
        """``{"vocab_size", "pad_token_id"}`` for token models (checked for teacher/student agreement)."""
        return None

    def hidden_size(self, model) -> int | None:
        """The width of the hidden states (``D`` of ``(N, L, D)`` tokens), when the family says. Default: None."""
        return None

    def describe(self, model) -> dict:
        """Sizes for results and model cards."""
        return {"num_layers": self.num_layers(model), "num_parameters": sum(p.numel() for p in model.parameters())}

    def match_student_inputs(self, model, student) -> None:
        """Called on the *teacher's* adapter: the batches are prepared for ``student``; adapt to them if
        needed (the timm adapter re-normalises pixels when the mean/std differ). Default: nothing."""

    def save_pretrained(self, model, directory: str, state_dict: dict | None = None) -> bool:
        """Save ``model`` in its library's own format and return True, or return False to let
        ``transformers`` save it (``model.save_pretrained`` / ``Trainer._save``, the default)."""
        return False

    # ------------------------------------------------------------------ model-family knowledge beyond the forward
    #: the pipeline task whose models this family runs (results.json's ``task`` for a trainer's results)
    task: str = "text-classification"
    #: packages besides the core ones whose versions a run's results record
    packages: tuple = ()

    def task_of(self, model) -> str:
        """The Hub pipeline tag of ``model``: its head's (``token-classification``, ``question-answering``, ...);
        a family whose models all serve one task (timm: ``image-classification``) sets :attr:`task` instead."""
        if self.task != ModelAdapter.task:
            return self.task
        return self.head(model).pipeline_tag

    def save(self, model, directory: str) -> None:
        """Save ``model`` to ``directory`` so that the task reloads it: the one saving path (tasks and trainers)."""
        if not self.save_pretrained(model, directory):
            model.save_pretrained(directory)

    def save_trainer_model(self, trainer, output_dir: str, state_dict: dict | None = None) -> bool:
        """``Trainer._save`` for a family that saves itself (:meth:`save_pretrained`): the model, the trainer's
        processing class and its arguments, and True; False (nothing written) to let ``Trainer._save`` save."""
        from transformers.trainer import TRAINING_ARGS_NAME

        model = trainer.accelerator.unwrap_model(trainer.model, keep_torch_compile=False)
        if not trainer.args.should_save or not self.save_pretrained(model, output_dir, state_dict=state_dict):
            return False
        if trainer.processing_class is not None:
            trainer.processing_class.save_pretrained(output_dir)
        torch.save(trainer.args, os.path.join(output_dir, TRAINING_ARGS_NAME))
        return True

    def attention_projections(self, model, layer: int) -> tuple:
        """The modules whose outputs are the query, key and value of block ``layer`` (``hidden_states`` index,
        1-based): ``(q, k, v)`` modules, or ``(qkv, None, None)`` for one fused module whose output is ``[Q|K|V]``.
        Read by ``alignment="attention"``; a family without them raises ``ValueError``."""
        raise ValueError(f"alignment='attention' reads the query/key/value projections of the aligned blocks, which "
                         f"the {self.name} adapter does not expose for "
                         f"{type(unwrap_model(model, peft=True)).__name__}: use alignment 'mse' or 'frequency'")

    def attention_heads(self, model) -> int | None:
        """The model's number of attention heads, when its family says (the default relation-head count)."""
        return None

    def copy_blocks(self, model, init_layers, config_overrides: dict | None = None):
        """A new model of ``model``'s architecture with ``len(init_layers)`` blocks: block ``j`` is ``model``'s block
        ``init_layers[j]`` (1-based), every other weight is copied as is (see :mod:`.blocks`)."""
        raise ValueError(f"the {self.name} adapter cannot build a student from the blocks of "
                         f"{type(unwrap_model(model, peft=True)).__name__}: use student.init pretrained or config")


ADAPTER_REGISTRY: dict[str, type[ModelAdapter]] = {}


def register_adapter(name: str) -> Callable:
    def wrap(cls):
        cls.name = name
        ADAPTER_REGISTRY[name] = cls
        return cls

    return wrap


def unwrap_model(model, peft: bool = False):
    """The model under DDP / DeepSpeed / ``torch.compile`` wrappers; with ``peft=True`` also under a PEFT wrapper.

    The one place that unwraps: a PEFT model is kept by default (it is what trains and saves), and unwrapped
    to its base model only where the base model's own config, class or ``forward`` signature is read.
    """
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif (
            hasattr(model, "module")
            and isinstance(model.module, torch.nn.Module)
            and not hasattr(model, "peft_config")
        ):
            model = model.module
        elif peft and hasattr(model, "peft_config") and hasattr(model, "get_base_model"):
            model = model.get_base_model()
        else:
            return model


def get_adapter(model, name: str | None = None) -> ModelAdapter:
    """Return an adapter instance for ``model`` (or the one registered under ``name``)."""
    if name is not None:
        if name not in ADAPTER_REGISTRY:
            raise ValueError(f"unknown adapter {name!r}: registered adapters are {', '.join(ADAPTER_REGISTRY)}")
        return ADAPTER_REGISTRY[name]()
    base = unwrap_model(model)
    for cls in sorted(ADAPTER_REGISTRY.values(), key=lambda c: getattr(c, "priority", 0), reverse=True):
        if cls.matches(base):
            return cls()
    raise ValueError(
        f"no adapter handles a model of type {type(base).__name__}: supported are Hugging Face transformers "
        f"models that return hidden_states ({', '.join(ADAPTER_REGISTRY)})"
    )


class capture_attention_projections:  # noqa: N801 - used as a context manager, like torch.no_grad
    """Within the ``with`` block, record the query/key/value outputs of blocks ``layers`` of ``model`` (through
    ``adapter.attention_projections``): ``captured[layer] == (Q, K, V)``, each ``(N, L, D)``, after one forward.
    Forward hooks only: the model and its outputs are unchanged; the hooks are removed on exit."""

    def __init__(self, adapter: ModelAdapter, model, layers, modules: dict | None = None):
        self.adapter, self.model, self.layers = adapter, model, list(layers)
        self.modules = modules  # layer -> (q, k, v) of every layer, already found (the trainer finds them once)
        self.captured: dict = {}
        self._handles: list = []

    def __enter__(self) -> dict:
        for layer in self.layers:
            q, k, v = (self.modules[layer] if self.modules is not None
                       else self.adapter.attention_projections(self.model, layer))
            if k is None:  # one fused module: [Q|K|V]
                self._handles.append(q.register_forward_hook(self._fused(layer)))
            else:
                for slot, module in enumerate((q, k, v)):
                    self._handles.append(module.register_forward_hook(self._separate(layer, slot)))
        return self.captured

    def _fused(self, layer):
        def record(module, inputs, output):
            self.captured[layer] = tuple(_first(output).chunk(3, dim=-1))
        return record

    def _separate(self, layer, slot):
        def record(module, inputs, output):
            parts = list(self.captured.get(layer) or (None, None, None))
            parts[slot] = _first(output)
            self.captured[layer] = tuple(parts)
        return record

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def _first(output):
    return output[0] if isinstance(output, tuple) else output
