"""The metrics (accuracy and macro-F1 by default; the task's own, e.g. entity F1 for token classification) and
throughput of a model on a prepared split (the pipeline's evaluate stage and ``hf-spectralkd evaluate``)."""

from __future__ import annotations

from ..metrics import compute_metrics as default_metrics
from .plan import EVAL_BATCH_SIZE, pin_memory

__all__ = ["evaluate_model"]


def evaluate_model(model, dataset, collator, batch_size: int = EVAL_BATCH_SIZE,
                   output_dir: str | None = None, progress: bool = True, trainer_class=None,
                   compute_metrics=None) -> dict:
    """The metrics of ``compute_metrics`` (default: accuracy and macro-F1) and the inference throughput of
    ``model`` on a prepared ``dataset``; ``metrics`` holds exactly the keys ``compute_metrics`` returns."""
    import tempfile

    from transformers import Trainer, TrainingArguments

    compute_metrics = compute_metrics or default_metrics
    returned = []

    def metrics_of(eval_pred):
        values = compute_metrics(eval_pred)
        returned[:] = list(values)
        return values

    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=output_dir or scratch, per_device_eval_batch_size=batch_size, report_to="none",
            disable_tqdm=not progress, dataloader_num_workers=0, dataloader_pin_memory=pin_memory(),
        )
        trainer = (trainer_class or Trainer)(model=model, args=args, data_collator=collator,
                                             compute_metrics=metrics_of)
        result = trainer.predict(dataset, metric_key_prefix="eval")
    metrics = result.metrics
    return {
        "metrics": {key: float(metrics[f"eval_{key}"]) for key in returned},
        "num_samples": len(dataset),
        "throughput_samples_per_s": float(metrics.get("eval_samples_per_second") or 0.0),
        "eval_runtime_s": float(metrics.get("eval_runtime") or 0.0),
    }
