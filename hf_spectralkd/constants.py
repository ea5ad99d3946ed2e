"""File and folder names a run, a trainer or a cache writes, and the stages of a recipe run: defined once, imported
everywhere. Weight-file names are transformers' and peft's own."""

from peft.utils import SAFETENSORS_WEIGHTS_NAME as ADAPTER_SAFE_WEIGHTS_NAME
from peft.utils import WEIGHTS_NAME as ADAPTER_WEIGHTS_NAME
from transformers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME, WEIGHTS_INDEX_NAME, WEIGHTS_NAME

# trainer output dir / student dir
LAYER_MAP_FILENAME = "layer_map.json"
PROFILE_FILENAME = "spectral_profile.json"
PLOT_FILENAME = "layer_intensity.png"
DYNAMICS_JSON_FILENAME = "distillation_dynamics.json"
DYNAMICS_PLOT_FILENAME = "distillation_dynamics.png"
TRAINING_LOG_FILENAME = "training_log.json"
CARD_FILENAME = "README.md"
# beside a trainer's saved student: what the model card is built from (`hf-spectralkd push` / `card` on the folder)
TRAINER_RESULTS_FILENAME = "distillation_results.json"
ADAPTER_DIRNAME = "adapter"  # a LoRA student's PEFT adapter, beside the merged model
PEFT_BASE_DIRNAME = "base_model"  # beside a saved PEFT adapter: the (truncated) base it was trained on
TIMM_DATA_CONFIG_FILENAME = "timm_data_config.json"
# the weights of a checkpoint the Trainer completed (a full model or a PEFT adapter)
CHECKPOINT_WEIGHT_FILES = (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, WEIGHTS_NAME, ADAPTER_SAFE_WEIGHTS_NAME,
                           ADAPTER_WEIGHTS_NAME)
# the weights a saved model folder may hold (any other ``*.safetensors`` file counts too)
MODEL_WEIGHT_FILES = (*CHECKPOINT_WEIGHT_FILES, WEIGHTS_INDEX_NAME)

# recipe run dir
RESULTS_FILENAME = "results.json"
SUMMARY_FILENAME = "summary.md"
STAGE_MARKER = "stage_done.json"
RUN_MARKER = ".hf_spectralkd_run.json"  # at the top of a run's output directory: its run files are the run's own
FINGERPRINT_FILENAME = "fingerprint.json"
TEACHER_CACHE_DIRNAME = "teacher_cache"
EVALUATION_DIRNAME = "evaluation"
# the stages of a recipe run, in order (the log tags them [i/6 name]); those in STAGE_DIRNAMES write a folder of that
# name in the run dir, finished when it holds a STAGE_MARKER (evaluate writes evaluation/, results writes files)
STAGES = ("teacher", "analysis", "student", "evaluate", "baseline", "results")
STAGE_DIRNAMES = tuple(name for name in STAGES if name not in ("evaluate", "results"))
ANALYSIS_DIRNAME = "analysis"  # the analysis stage's folder: where the layer-intensity PNG is first written
STUDENT_DIRNAME = "student"  # a run dir's distilled student, beside results.json
# distillation.candidates: each candidate trains in <student stage>/candidates/<i>/ (the best is moved up, the others
# removed); candidates.json in the student folder records every candidate
CANDIDATES_DIRNAME = "candidates"
CANDIDATES_FILENAME = "candidates.json"
FINETUNE_STOP_FILENAME = "finetune_stop.json"  # the teacher stage: why its fine-tuning stopped (budget or early stop)

# teacher cache
CACHE_META_FILENAME = "cache_meta.json"

# batch columns
KD_MASK_COLUMN = "kd_mask"  # token tasks: 1 on the positions whose KD term counts (transfer rows carry no labels)
# the teacher cache's example ids in a batch, whatever the dataset column is called (DistillationDataCollator puts
# them there; no adapter passes the key to a model)
EXAMPLE_ID_KEY = "example_id"
