"""File and folder names a run, a trainer or a cache writes: defined once, imported everywhere."""

# trainer output dir / student dir
LAYER_MAP_FILENAME = "layer_map.json"
PROFILE_FILENAME = "spectral_profile.json"
PLOT_FILENAME = "layer_intensity.png"
DYNAMICS_JSON_FILENAME = "distillation_dynamics.json"
DYNAMICS_PLOT_FILENAME = "distillation_dynamics.png"
TRAINING_LOG_FILENAME = "training_log.json"
CARD_FILENAME = "README.md"
ADAPTER_DIRNAME = "adapter"  # a LoRA student's PEFT adapter, beside the merged model
PEFT_BASE_DIRNAME = "base_model"  # beside a saved PEFT adapter: the (truncated) base it was trained on
TIMM_DATA_CONFIG_FILENAME = "timm_data_config.json"

# recipe run dir
RESULTS_FILENAME = "results.json"
SUMMARY_FILENAME = "summary.md"
STAGE_MARKER = "stage_done.json"
FINGERPRINT_FILENAME = "fingerprint.json"
TEACHER_CACHE_DIRNAME = "teacher_cache"
EVALUATION_DIRNAME = "evaluation"

# teacher cache
CACHE_META_FILENAME = "cache_meta.json"
