"""hyperparameter_search (optuna) and model_init: a fresh student per trial, the teacher's spectral profile measured
once, every trial's layer pairs derived from it with that trial's beta; the best trial's values come back."""

import optuna  # the dev extra installs it
import torch
from conftest import make_token_rows, pad_collate, small_config, tiny_bert
from datasets import Dataset

import hf_spectralkd.distillation_trainer as trainer_module
from hf_spectralkd import SpectralDistillationTrainer


def hp_space(trial):
    return {
        "alpha": trial.suggest_float("alpha", 0.1, 0.9),
        "beta": trial.suggest_categorical("beta", [0.0, 0.5]),
        "temperature": trial.suggest_float("temperature", 1.0, 4.0),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-3, log=True),
    }


def test_a_three_trial_optuna_search_measures_the_teacher_once(tmp_path, monkeypatch):
    passes = []
    real = trainer_module.collect_profile
    monkeypatch.setattr(trainer_module, "collect_profile", lambda *a, **k: passes.append(1) or real(*a, **k))
    built, seen = [], []

    def model_init(trial):
        built.append(trial)
        return tiny_bert(num_layers=2, hidden=16, seed=len(built))

    class Recording(SpectralDistillationTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if model.training and self.state.global_step == 0:
                seen.append((self.args.alpha, self.args.beta, self.args.temperature, self.args.learning_rate,
                             list(self.layer_map.teacher_layers) if self.layer_map else None, id(model)))
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    rows = make_token_rows(32, seed=1)
    trainer = Recording(
        model_init=model_init, teacher_model=tiny_bert(num_layers=4, hidden=32, seed=0),
        args=small_config(tmp_path, max_steps=2, eval_strategy="no", spectral_dynamics=False),
        train_dataset=Dataset.from_list(rows), eval_dataset=Dataset.from_list(rows[:16]), data_collator=pad_collate,
    )
    sampler = optuna.samplers.TPESampler(seed=0)
    best = trainer.hyperparameter_search(hp_space=hp_space, backend="optuna", n_trials=3, direction="minimize",
                                         sampler=sampler)
    assert len(built) == 4  # the checks' student at construction, then one per trial
    assert all(trial is not None for trial in built[1:])
    assert len(seen) == 3 and len({model for *_, model in seen}) == 3  # a fresh student each trial
    for alpha, beta, temperature, lr, teacher_layers, _ in seen:
        assert 0.1 <= alpha <= 0.9 and 1.0 <= temperature <= 4.0 and 1e-4 <= lr <= 1e-3
        assert (teacher_layers == [] if beta == 0 else len(teacher_layers) == 2)
    assert len(passes) <= 1  # one teacher pass at most (none if every trial drew beta = 0)
    if any(beta > 0 for _, beta, *_ in seen):
        assert len(passes) == 1
    assert set(best.hyperparameters) == {"alpha", "beta", "temperature", "learning_rate"}
    assert torch.isfinite(torch.tensor(best.objective))


def test_model_init_without_search_trains_its_student(tmp_path):
    trainer = SpectralDistillationTrainer(
        model_init=lambda: tiny_bert(num_layers=2, hidden=16, seed=1),
        teacher_model=tiny_bert(num_layers=4, hidden=32, seed=0),
        args=small_config(tmp_path, max_steps=2, spectral_dynamics=False),
        train_dataset=Dataset.from_list(make_token_rows(16)), data_collator=pad_collate,
    )
    trainer.train()
    assert trainer.state.global_step == 2 and trainer.layer_map.student_layers == [1, 2]
    assert [e for e in trainer.state.log_history if "freq_loss" in e][-1]["freq_loss"] > 0
