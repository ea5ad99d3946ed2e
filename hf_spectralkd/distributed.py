"""Teacher placement under Accelerate: replicated (never DDP-wrapped), sharded under ZeRO-3 / FSDP.

Follows what TRL's distillation trainers (GKD) do for a frozen second model.
"""

from __future__ import annotations

from copy import deepcopy

__all__ = ["prepare_teacher"]


def _prepare_deepspeed(model, accelerator):
    import deepspeed

    plugin = accelerator.state.deepspeed_plugin
    config = deepcopy(plugin.deepspeed_config)
    stage = config.get("zero_optimization", {}).get("stage", 0)
    hidden_size = getattr(getattr(model, "config", None), "hidden_size", None)
    if hidden_size is not None and stage == 3:
        # the bucket sizes TRL uses for an inference-only ZeRO-3 engine
        config.update(
            {
                "zero_optimization.reduce_bucket_size": hidden_size * hidden_size,
                "zero_optimization.stage3_param_persistence_threshold": 10 * hidden_size,
                "zero_optimization.stage3_prefetch_bucket_size": 0.9 * hidden_size * hidden_size,
            }
        )
    if stage != 3:
        # ZeRO-1/2 shard optimizer state only: a frozen teacher is simply replicated
        config.setdefault("zero_optimization", {})["stage"] = 0
    config.pop("optimizer", None)
    config.pop("scheduler", None)
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
                sharding_strategy=plugin.sharding_strategy,
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
