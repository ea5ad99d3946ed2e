"""Teacher placement under Accelerate: replicated (never DDP-wrapped), sharded under ZeRO-3 / FSDP.

Follows what TRL's distillation trainers (GKD) do for a frozen second model.
"""

from __future__ import annotations

from contextlib import contextmanager
from copy import deepcopy

import torch

__all__ = ["prepare_teacher", "preserve_rng_state", "teacher_deepspeed_config"]


@contextmanager
def preserve_rng_state(device=None):
    """Run side work (layer selection, dynamics probes) without consuming the training run's random numbers.

    Iterating a ``DataLoader`` draws a base seed from the global generator, so an analysis pass before or during
    training would otherwise shift the Trainer's shuffling and dropout: runs with and without automatic
    selection (or with the dynamics callback on and off) would see different batches.
    """
    devices = []
    if device is not None and torch.device(device).type == "cuda":
        index = torch.device(device).index
        devices = [torch.cuda.current_device() if index is None else index]
    with torch.random.fork_rng(devices=devices):
        yield


def _hidden_size(model):
    config = getattr(model, "config", None)
    sizes = getattr(config, "hidden_sizes", None)  # e.g. ConvNeXt / Swin style configs
    if sizes:
        return max(sizes)
    return getattr(config, "hidden_size", None)


def teacher_deepspeed_config(deepspeed_config: dict, model) -> dict:
    """The DeepSpeed config of the frozen teacher's inference engine, derived from the student's.

    As TRL's ``prepare_deepspeed``: ZeRO-3 shards the teacher like the student; under ZeRO-0/1/2 (which shard
    only optimizer state and gradients) the teacher is replicated with ZeRO disabled (stage 0). Unlike TRL, the
    ZeRO-3 bucket sizes are written into the nested ``zero_optimization`` section, replacing ``"auto"`` (TRL
    adds them as dotted top-level keys, which DeepSpeed does not read, so ``"auto"`` values reached the
    engine), and optimizer / scheduler sections are dropped (an inference engine has nothing to optimize).
    """
    config = deepcopy(deepspeed_config)
    zero = config.setdefault("zero_optimization", {})
    stage = zero.get("stage", 0)
    if stage == 3:
        hidden_size = _hidden_size(model)
        if hidden_size is not None:
            defaults = {
                "reduce_bucket_size": hidden_size * hidden_size,
                "stage3_param_persistence_threshold": 10 * hidden_size,
                "stage3_prefetch_bucket_size": int(0.9 * hidden_size * hidden_size),
            }
            for key, value in defaults.items():
                if zero.get(key, "auto") == "auto":
                    zero[key] = value
    else:
        zero["stage"] = 0
    config.pop("optimizer", None)
    config.pop("scheduler", None)
    return config


def _prepare_deepspeed(model, accelerator):
    import deepspeed

    config = teacher_deepspeed_config(accelerator.state.deepspeed_plugin.deepspeed_config, model)
    engine, *_ = deepspeed.initialize(model=model, config=config)
    engine.eval()
    return engine


def _prepare_fsdp(model, accelerator):
    plugin = accelerator.state.fsdp_plugin
    if getattr(plugin, "fsdp_version", 1) == 2:
        from accelerate.utils.fsdp_utils import fsdp2_prepare_model

        model = fsdp2_prepare_model(accelerator, model)
    else:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        if not isinstance(model, FSDP):
            plugin.set_auto_wrap_policy(model)
            model = FSDP(
                model,
                # accelerate deprecates sharding_strategy in favour of reshard_after_forward (either may be set)
                sharding_strategy=plugin.sharding_strategy or plugin.reshard_after_forward,
                cpu_offload=plugin.cpu_offload,
                auto_wrap_policy=plugin.auto_wrap_policy,
                mixed_precision=plugin.mixed_precision_policy,
                sync_module_states=plugin.sync_module_states,
                backward_prefetch=plugin.backward_prefetch,
                forward_prefetch=plugin.forward_prefetch,
                use_orig_params=plugin.use_orig_params,
                param_init_fn=plugin.param_init_fn,
                ignored_modules=plugin.ignored_modules,
                limit_all_gathers=plugin.limit_all_gathers,
                device_id=accelerator.device,
            )
    model.eval()
    return model


def prepare_teacher(model, accelerator, is_deepspeed_enabled: bool, is_fsdp_enabled: bool):
    """Freeze ``model`` and place it for inference on every process."""
    model.requires_grad_(False)
    model.eval()
    if is_deepspeed_enabled:
        return _prepare_deepspeed(model, accelerator)
    if is_fsdp_enabled:
        return _prepare_fsdp(model, accelerator)
    return accelerator.prepare_model(model, evaluation_mode=True)
