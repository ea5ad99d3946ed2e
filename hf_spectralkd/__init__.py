"""hf_spectralkd: spectral knowledge distillation (SpectralKD) for Hugging Face Trainer and timm.

Paper: "SpectralKD: A Unified Framework for Interpreting and Distilling Vision Transformers via Spectral
Analysis" (Tian, Xu, Li, Pan; arXiv 2412.19055).
"""

__version__ = "0.1.0"

from .adapters import ADAPTER_REGISTRY, get_adapter, register_adapter
from .analysis import analyze, collect_profile, plot_layer_intensity
from .distillation_config import SpectralDistillationConfig
from .distillation_trainer import LayerMap, SpectralDistillationTrainer
from .dynamics import SpectralDynamicsCallback, curve_agreement
from .feature_losses import attention_transfer_loss, hidden_mse_loss
from .loading import packaged_minilm_path
from .spectral import (
    SpectralProfile,
    frequency_alignment_loss,
    select_layers,
    spectral_entropy,
    spectral_intensity,
    spectral_spectrum,
)
from .students import build_student

__all__ = [
    "ADAPTER_REGISTRY",
    "LayerMap",
    "SpectralDistillationConfig",
    "SpectralDistillationTrainer",
    "SpectralDynamicsCallback",
    "SpectralProfile",
    "analyze",
    "attention_transfer_loss",
    "build_student",
    "collect_profile",
    "curve_agreement",
    "frequency_alignment_loss",
    "get_adapter",
    "hidden_mse_loss",
    "packaged_minilm_path",
    "plot_layer_intensity",
    "register_adapter",
    "select_layers",
    "spectral_entropy",
    "spectral_intensity",
    "spectral_spectrum",
    "__version__",
]
