"""Adapter for ``timm`` image classifiers (ViT / DeiT, DeiT distilled, CaiT, Swin, ... ).

Features come from timm's own ``forward_intermediates`` (no forward hooks, no monkey-patching), the logits
from ``forward_head`` applied to the final features of the same pass, so one forward gives both.

Layer convention (the same as HF ``hidden_states``):

* ``hidden_states[0]`` is the **patch-embedding output**, ``model.patch_embed(pixel_values)`` (for conv
  nets without ``patch_embed``: ``model.stem(pixel_values)``), before position embeddings and prefix
  tokens. It is one extra call of a submodule (a strided conv), not a hook. Never auto-selected unless
  ``include_embeddings=True``, as for text.
* ``hidden_states[l]`` (``l = 1..n``) is the output of block ``l`` for ViT / DeiT / CaiT (``n = depth``;
  CaiT's class-attention blocks are not counted), and of **stage** ``l`` for Swin (``n = len(depths)``):
  what ``forward_intermediates(indices=None)`` returns, in order.

Every map is an ``(N, C, H, W)`` tensor (``output_fmt="NCHW"``) with the prefix tokens (CLS,
distillation, registers) removed, so :mod:`hf_spectralkd.spectral` treats it as vision: the spectral
intensity takes the DFT over the channel axis ``C`` with the ``H·W`` positions as tokens, and the
alignment loss takes ``rfft2`` over ``(H, W)``.

Inputs are ``pixel_values`` (normalised with the *student's* ``pretrained_cfg`` mean/std) and ``labels``.
When the teacher was trained with another normalisation, :meth:`TimmAdapter.match_student_inputs`
makes the teacher adapter re-normalise ``pixel_values`` from the student's mean/std to the teacher's.
Saving writes timm's own format (``config.json`` + ``model.safetensors``), which
``timm.create_model("local-dir:DIR", pretrained=True)`` reloads.
"""

from __future__ import annotations

import os

import torch

from .base import AdapterOutput, ModelAdapter, register_adapter, unwrap_model
from .blocks import check_block_indices, copy_block_weights

__all__ = ["TimmAdapter", "DATA_CONFIG_KEYS", "is_timm_model", "load_timm_model", "timm_data_config"]

# the keys of timm's data config a model's pixels are prepared by (and a saved model records)
DATA_CONFIG_KEYS = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")


def is_timm_model(model) -> bool:
    """A timm classifier: built by ``timm.create_model`` (it carries a ``pretrained_cfg``) or a timm class."""
    if not isinstance(model, torch.nn.Module):
        return False
    try:
        from transformers import PreTrainedModel

        if isinstance(model, PreTrainedModel):
            return False
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass
    return type(model).__module__.startswith("timm.") or (
        isinstance(getattr(model, "pretrained_cfg", None), dict) and hasattr(model, "forward_head")
    )


def timm_data_config(model) -> dict:
    """timm's data config (``input_size``, ``mean``, ``std``, ``interpolation``, ``crop_pct``...) of the
    model *as built* (a ViT created with ``img_size=32`` gives ``input_size=(3, 32, 32)``)."""
    import timm.data

    model = unwrap_model(model, peft=True)
    resolve = getattr(timm.data, "resolve_input_data_config", None)
    if resolve is not None:  # timm >= 1.0.2x: reads the current input size from the model
        return dict(resolve(model))
    return dict(timm.data.resolve_data_config({}, model=model))  # pragma: no cover - older timm


@register_adapter("timm")
class TimmAdapter(ModelAdapter):
    """Runs a timm classifier through ``forward_intermediates`` + ``forward_head``."""

    priority = 10  # more specific than the generic transformers adapter
    input_names = ("pixel_values",)
    task = "image-classification"
    packages = ("timm",)

    def __init__(self):
        # affine map from the student's normalisation to this model's: x * scale + shift (per channel)
        self.input_scale: torch.Tensor | None = None
        self.input_shift: torch.Tensor | None = None

    @classmethod
    def matches(cls, model) -> bool:
        return is_timm_model(unwrap_model(model, peft=True))

    # ------------------------------------------------------------------ checks
    @staticmethod
    def _check_supported(model):
        base = unwrap_model(model, peft=True)
        missing = [
            name for name in ("forward_intermediates", "forward_head") if not callable(getattr(base, name, None))
        ]
        if missing:
            name = (
                base.pretrained_cfg.get("architecture")
                if isinstance(getattr(base, "pretrained_cfg", None), dict)
                else None
            )
            raise ValueError(
                f"the timm model {name or type(base).__name__} ({type(base).__name__}) has no {' / '.join(missing)}: "
                "SpectralKD reads per-block features through timm's forward_intermediates(). Use a timm model that "
                "implements it (ViT, DeiT, CaiT, Swin, ... in timm >= 1.0) or upgrade timm"
            )
        return base

    # ------------------------------------------------------------------ forward
    def forward(self, model, inputs: dict, output_hidden_states: bool = True, head=None) -> AdapterOutput:
        base = self._check_supported(model)
        pixel_values = inputs.get("pixel_values")
        if pixel_values is None:
            raise ValueError(
                f"a timm model takes `pixel_values`; the batch has keys {sorted(inputs)}. Build the dataset with "
                "hf_spectralkd.tasks.image (or set_transform returning {'pixel_values', 'labels'}) and keep "
                "remove_unused_columns=False"
            )
        if (
            model is not base
            and isinstance(model, torch.nn.parallel.DistributedDataParallel)
            and model.training
            and torch.is_grad_enabled()
        ):
            raise ValueError(
                "a DDP-wrapped timm student is not supported: forward_intermediates() is called on the inner module, "
                "which would bypass DDP's gradient synchronisation. Train the timm student in a single process "
                "(the teacher may be sharded with DeepSpeed/FSDP)"
            )
        x = self._renormalise(pixel_values)
        if not output_hidden_states:
            logits = base.forward_head(base.forward_features(x))
            return AdapterOutput(logits=self._merge_heads(logits), hidden_states=None)
        final, maps = base.forward_intermediates(x, indices=None, output_fmt="NCHW", intermediates_only=False)
        logits = self._merge_heads(base.forward_head(final))
        expected = self.num_layers(base)
        if len(maps) != expected:
            raise ValueError(
                f"{type(base).__name__}.forward_intermediates returned {len(maps)} maps but its feature_info lists "
                f"{expected} blocks/stages; this timm model does not follow the one-map-per-block convention"
            )
        hidden = (self._embedding_map(base, x, maps), *maps)
        return AdapterOutput(logits=logits, hidden_states=hidden, attention_mask=None)

    @staticmethod
    def _merge_heads(logits):
        # DeiT distilled in `distilled_training` mode returns (cls head, distillation head) while training
        if isinstance(logits, (tuple, list)):
            return torch.stack(list(logits)).mean(dim=0)
        return logits

    @staticmethod
    def _embedding_map(base, x, maps) -> torch.Tensor:
        """Index 0: the patch embedding (or conv stem) as an NCHW map."""
        embed = getattr(base, "patch_embed", None)
        module = embed if isinstance(embed, torch.nn.Module) else getattr(base, "stem", None)
        if not isinstance(module, torch.nn.Module):
            raise ValueError(
                f"{type(base).__name__} has neither `patch_embed` nor `stem`: the adapter cannot produce "
                "hidden_states[0] (the embedding output)"
            )
        y = module(x)
        if isinstance(y, (tuple, list)):  # PatchEmbedWithSize returns (tokens, feat_size)
            y = y[0]
        if y.dim() == 3:  # flattened (N, L, D) tokens: back onto the patch grid
            n, length, dim = y.shape
            if hasattr(module, "dynamic_feat_size"):
                grid = tuple(module.dynamic_feat_size(tuple(x.shape[-2:])))
            else:
                grid = tuple(maps[0].shape[-2:])
            if grid[0] * grid[1] != length:
                raise ValueError(f"{type(base).__name__}: patch embedding has {length} tokens, not a {grid} grid")
            y = y.transpose(1, 2).reshape(n, dim, *grid)
        elif y.dim() == 4 and str(getattr(module, "output_fmt", "NCHW")).endswith("NHWC"):
            y = y.permute(0, 3, 1, 2)
        return y.contiguous()

    # ------------------------------------------------------------------ teacher input normalisation
    def match_student_inputs(self, model, student) -> None:
        """Re-normalise this (teacher) model's input from the student's mean/std to its own.

        ``pixel_values`` are prepared once, for the student; ``x_raw = x·std_s + mean_s`` and the teacher
        sees ``(x_raw - mean_t) / std_t = x·(std_s/std_t) + (mean_s - mean_t)/std_t``.
        """
        self.input_scale = self.input_shift = None
        student_base = unwrap_model(student, peft=True)
        if not is_timm_model(student_base):
            return
        teacher_cfg, student_cfg = timm_data_config(model), timm_data_config(student_base)
        t_size, s_size = tuple(teacher_cfg["input_size"]), tuple(student_cfg["input_size"])
        if t_size != s_size and _fixed_input_size(unwrap_model(model, peft=True)):
            raise ValueError(
                f"teacher and student expect different input sizes (teacher {t_size}, student {s_size}) and the "
                "teacher only accepts its own: create both at the same img_size (the pixels are prepared once, "
                "for the student)"
            )
        mean_t, std_t = _vector(teacher_cfg["mean"]), _vector(teacher_cfg["std"])
        mean_s, std_s = _vector(student_cfg["mean"]), _vector(student_cfg["std"])
        if torch.allclose(mean_t, mean_s) and torch.allclose(std_t, std_s):
            return
        self.input_scale = (std_s / std_t).view(1, -1, 1, 1)
        self.input_shift = ((mean_s - mean_t) / std_t).view(1, -1, 1, 1)

    def _renormalise(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_scale is None:
            return x
        scale = self.input_scale.to(device=x.device, dtype=x.dtype)
        shift = self.input_shift.to(device=x.device, dtype=x.dtype)
        return x * scale + shift

    # ------------------------------------------------------------------ metadata
    def num_layers(self, model) -> int:
        base = self._check_supported(model)
        info = getattr(base, "feature_info", None)
        if info:
            return len(info)
        for attr in ("blocks", "layers", "stages"):  # what forward_intermediates iterates over
            seq = getattr(base, attr, None)
            if isinstance(seq, (torch.nn.Sequential, torch.nn.ModuleList)):
                return len(seq)
        raise ValueError(f"cannot tell how many blocks {type(base).__name__} has (no feature_info / blocks / layers)")

    def num_labels(self, model) -> int | None:
        return getattr(unwrap_model(model, peft=True), "num_classes", None)

    def id2label(self, model) -> dict | None:
        cfg = getattr(unwrap_model(model, peft=True), "pretrained_cfg", None) or {}
        names = cfg.get("label_names")
        if not names:
            return None
        items = names.items() if isinstance(names, dict) else enumerate(names)
        mapping = {int(k): str(v) for k, v in items}
        num_classes = self.num_labels(model)
        return mapping if num_classes is None or len(mapping) == num_classes else None

    def hidden_size(self, model) -> int | None:
        base = unwrap_model(model, peft=True)
        return getattr(base, "embed_dim", None) or getattr(base, "num_features", None)

    def describe(self, model) -> dict:
        base = unwrap_model(model, peft=True)
        cfg = getattr(base, "pretrained_cfg", None) or {}
        return {
            "num_layers": self.num_layers(base),
            "hidden_size": self.hidden_size(base),
            "num_parameters": sum(p.numel() for p in base.parameters()),
            "model_type": cfg.get("architecture") or type(base).__name__,
        }

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, model, directory: str, state_dict: dict | None = None) -> bool:
        """Write timm's format: ``config.json`` (architecture, ``model_args``, ``pretrained_cfg`` with the
        input size / mean / std, ``label_names``) and ``model.safetensors``."""
        import safetensors.torch
        from timm.models._hub import save_config_for_hf

        base = unwrap_model(model, peft=True)
        os.makedirs(directory, exist_ok=True)
        model_config = {}
        id2label = self.id2label(base)
        if id2label:
            model_config["label_names"] = [id2label[i] for i in sorted(id2label)]
        save_config_for_hf(
            base, os.path.join(directory, "config.json"), model_config=model_config, data_config=timm_data_config(base)
        )
        tensors = state_dict if state_dict is not None else base.state_dict()
        tensors = {k: v.detach().contiguous() for k, v in tensors.items()}
        safetensors.torch.save_file(tensors, os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})
        return True

    # ------------------------------------------------------------------ students from the teacher's blocks
    def copy_blocks(self, model, init_layers, config_overrides: dict | None = None):
        """A student of the teacher's architecture with ``len(init_layers)`` blocks copied from the teacher
        (ViT / DeiT / CaiT: ``blocks.{j}`` <- ``blocks.{init_layers[j]-1}``; everything else copied as is);
        ``config_overrides`` are ``timm.create_model`` arguments (widths and patching excepted)."""
        import timm

        teacher = unwrap_model(model, peft=True)
        blocks = getattr(teacher, "blocks", None)
        if not isinstance(blocks, (torch.nn.Sequential, torch.nn.ModuleList)):
            raise ValueError(
                f"student.init teacher_layers copies ViT-style blocks, but {type(teacher).__name__} has no `blocks` "
                "list (Swin counts stages): use student.init config or pretrained"
            )
        check_block_indices(init_layers, len(blocks))
        overrides = config_overrides or {}
        args = dict(getattr(teacher, "_model_args", {}) or {})
        fixed = _fixed_shapes(teacher)
        for key, value in fixed.items():
            if key in overrides and _as_pair(overrides[key]) != _as_pair(value):
                raise ValueError(
                    f"student.config.{key}={overrides[key]!r}: student.init teacher_layers copies the teacher's "
                    f"blocks, whose {key} is {value!r}, so it cannot change (the weights must fit). Remove it, or "
                    "build a fresh student with student.init: config")
        args.update({k: v for k, v in overrides.items() if k != "pretrained_cfg_overlay"})
        args["depth"] = len(init_layers)
        cfg = {k: v for k, v in teacher.pretrained_cfg.items() if k in (*DATA_CONFIG_KEYS, "label_names")}
        student = timm.create_model(teacher.pretrained_cfg["architecture"], pretrained=False,
                                    pretrained_cfg_overlay=cfg, **args)
        copy_block_weights(teacher, student, "blocks", init_layers)
        return student


def _fixed_shapes(model) -> dict:
    """The settings copied blocks cannot change, as the teacher has them (``embed_dim``, ``num_heads``,
    ``patch_size``, ``img_size``; read from the modules, so a timm default counts as much as a given argument)."""
    fixed = {}
    if getattr(model, "embed_dim", None) is not None:
        fixed["embed_dim"] = model.embed_dim
    blocks = getattr(model, "blocks", None)
    attn = getattr(blocks[0], "attn", None) if blocks is not None and len(blocks) else None
    if getattr(attn, "num_heads", None) is not None:
        fixed["num_heads"] = attn.num_heads
    patch = getattr(model, "patch_embed", None)
    for key in ("patch_size", "img_size"):
        if getattr(patch, key, None) is not None:
            fixed[key] = getattr(patch, key)
    return fixed


def _as_pair(value):
    """``16`` and ``(16, 16)`` name the same patch / image size."""
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return (value, value) if isinstance(value, int) else value


def _vector(values) -> torch.Tensor:
    return torch.tensor([float(v) for v in values], dtype=torch.float32)


def _fixed_input_size(model) -> bool:
    try:
        from timm.models._input import get_model_input_config  # timm >= 1.0.2x

        return bool(get_model_input_config(model).get("fixed_input_size", True))
    except ImportError:  # pragma: no cover - older timm
        return bool((getattr(model, "pretrained_cfg", None) or {}).get("fixed_input_size", True))


def load_timm_model(reference: str, what: str = "model", **kwargs):
    """Load a timm model saved by this adapter (a local directory) or named by a timm / ``hf-hub:`` id."""
    import timm

    path = os.path.expanduser(str(reference))
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise ValueError(f"{what}: {reference!r} has no config.json (not a timm model directory)")
        return timm.create_model(f"local-dir:{os.path.abspath(path)}", pretrained=True, **kwargs)
    return timm.create_model(str(reference), **kwargs)
