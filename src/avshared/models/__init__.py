"""Plain torch.nn modules: modality embeddings, the shared encoder, heads, the baseline and the
shared encoder fused late or mid-way, and the masked autoencoder that pretrains them."""

from avshared.models.baseline import SeparateEncodersClassifier
from avshared.models.builder import MODEL_KINDS, build_model, count_parameters, restore_model
from avshared.models.classifier import MODALITY_ORDER, EmotionClassifier, parse_modalities
from avshared.models.config import PRESETS, ModelConfig
from avshared.models.embeddings import AudioPatchEmbedding, VideoPatchEmbedding
from avshared.models.encoder import SharedEncoder
from avshared.models.head import ClassificationHead
from avshared.models.masked_autoencoder import DecoderConfig, MaskedAutoencoder
from avshared.models.shared import SharedEncoderClassifier
from avshared.models.shared_late import SharedLateFusionClassifier
from avshared.models.shared_mid import SharedMidFusionClassifier
from avshared.models.vit_checkpoint import (
    VitLoadReport,
    load_vit_into_classifier,
    load_vit_weights,
)

__all__ = [
    "MODALITY_ORDER",
    "MODEL_KINDS",
    "PRESETS",
    "AudioPatchEmbedding",
    "ClassificationHead",
    "DecoderConfig",
    "EmotionClassifier",
    "MaskedAutoencoder",
    "ModelConfig",
    "SeparateEncodersClassifier",
    "SharedEncoder",
    "SharedEncoderClassifier",
    "SharedLateFusionClassifier",
    "SharedMidFusionClassifier",
    "VideoPatchEmbedding",
    "VitLoadReport",
    "build_model",
    "count_parameters",
    "load_vit_into_classifier",
    "load_vit_weights",
    "parse_modalities",
    "restore_model",
]
