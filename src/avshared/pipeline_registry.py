"""Project pipelines: the data pipelines, one pipeline per training phase, and ``__default__``.

``kedro run --pipelines=<phase>`` (video, audio, bimodal, baseline) runs what that phase needs from
ingestion, labels, split and features (the video phase extracts no spectrograms), then trains and
evaluates it. ``kedro run`` runs every data pipeline, the default phases
(``training.DEFAULT_PHASES``) and the report; ``kedro run --pipelines=comparison`` runs every
phase (adding the label-source, curriculum and pretrained rows, after the ``pretrain`` pipeline)
and the report of them all; ``demo_data``, ``pretrain`` and ``predict`` only ever run when named.

``analysis`` (also part of ``__default__`` and ``comparison``) measures what the encoder of each
two-modality phase learnt; it gives cross-modal attention to the phases whose model kind, as the
project's parameter files set it (``configured_model_kinds``), has a joint encoder.

The registry is explicit rather than ``find_pipelines()``: Kedro 1.7 loads only the packages named
on the command line, and the phase pipelines are not packages of their own.
"""

import os
from pathlib import Path

from kedro.framework.project import settings
from kedro.pipeline import Pipeline
from kedro.utils import find_kedro_project

from avshared.parameters import merged_phase_parameters
from avshared.pipelines import (
    analysis,
    demo_data,
    features,
    ingestion,
    labels,
    predict,
    pretrain,
    reporting,
    split,
    training,
)

#: The features pipeline's extraction nodes, and what they write for pretraining's extra recordings.
EXTRA_RECORDING_OUTPUTS: dict[str, str] = {
    "log_mel_spectrograms": "pretrain_extra_log_mel_spectrograms",
    "face_frames": "pretrain_extra_face_frames",
}


def data_preparation() -> Pipeline:
    """CREMA-D root -> clip manifest, crowd labels, split and features."""
    return (
        ingestion.create_pipeline()
        + labels.create_pipeline()
        + split.create_pipeline()
        + features.create_pipeline()
    )


def extra_recording_features() -> Pipeline:
    """The features pipeline's own extraction (the same code and parameters as the corpus's), on
    the recordings of ``pretrain.extra_inputs`` (``pretrain_extra_recordings``)."""
    extraction = features.create_pipeline().only_nodes_with_outputs(*EXTRA_RECORDING_OUTPUTS)
    return Pipeline(
        extraction,
        namespace="pretrain_extra",
        inputs={"clip_manifest": "pretrain_extra_recordings"},
        outputs=EXTRA_RECORDING_OUTPUTS,
        parameters={"features.audio", "features.video", "features.extraction"},
    )


def pretraining(preparation: Pipeline) -> Pipeline:
    """The pretrain pipeline, the extra recordings' features and the part of ``preparation`` it
    needs (ingestion, split and the features of the corpus)."""
    pretraining = pretrain.create_pipeline() + extra_recording_features()
    needed = pretraining.inputs() & preparation.all_outputs()
    return preparation.to_outputs(*needed) + pretraining


def phase_pipeline(phase: str, preparation: Pipeline) -> Pipeline:
    """A phase's training and evaluation, preceded by the part of ``preparation`` it needs."""
    phase_training = training.create_phase_pipeline(phase)
    needed = phase_training.inputs() & preparation.all_outputs()
    return preparation.to_outputs(*needed) + phase_training


def configured_model_kinds() -> dict[str, str]:
    """Each phase's model kind as the project's parameter files set it: ``training.defaults``
    merged with ``training.phases.<phase>``, from conf/base and conf/local (or ``KEDRO_ENV``'s).

    Which nodes a pipeline has is fixed before Kedro reads a run's parameters, so a kind changed
    with ``--params`` is not seen here; a phase whose trained model then lacks the joint encoder
    its attention nodes need fails there, saying so.
    """
    project = find_kedro_project(Path.cwd())
    if project is None:
        raise RuntimeError(
            f"{Path.cwd()} is not inside a Kedro project: run kedro from the avshared project "
            "folder (the one with pyproject.toml and conf/)"
        )
    # The loader a KedroSession makes (avshared.settings, once Kedro has configured the project).
    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(project / settings.CONF_SOURCE),
        env=os.environ.get("KEDRO_ENV"),
        **settings.CONFIG_LOADER_ARGS,
    )
    training_parameters = loader["parameters"]["training"]
    return {
        phase: merged_phase_parameters(
            training_parameters["defaults"], training_parameters["phases"].get(phase)
        )["model"]["kind"]
        for phase in training.PHASE_MODALITIES
    }


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines; ``__default__`` runs everything but ``demo_data``."""
    preparation = data_preparation()
    pipelines = {
        "demo_data": demo_data.create_pipeline(),
        "ingestion": ingestion.create_pipeline(),
        "labels": labels.create_pipeline(),
        "split": split.create_pipeline(),
        "features": features.create_pipeline(),
        # The data every phase reads, prepared once before the cells of a grid run (docs/grid.md).
        "preparation": preparation,
        # Every phase, from the prepared data: `kedro run --pipelines=training` retrains them all.
        "training": training.create_pipeline(),
        "reporting": reporting.create_pipeline(),
        # A trained model on new recordings: --params=predict.inputs=PATH (docs/applications.md).
        "predict": predict.create_pipeline(),
        # Masked autoencoding of the encoders, per fold (init: pretrain starts a phase from it).
        "pretrain": pretraining(preparation),
    }
    model_kinds = configured_model_kinds()
    # The analysis of the default phases' models, from their catalog entries.
    pipelines["analysis"] = analysis.create_pipeline(model_kinds=model_kinds)
    pipelines |= {phase: phase_pipeline(phase, preparation) for phase in training.PHASE_MODALITIES}
    pipelines["__default__"] = (
        preparation + pipelines["training"] + pipelines["reporting"] + pipelines["analysis"]
    )
    every_phase = tuple(training.PHASE_MODALITIES)
    pipelines["comparison"] = (
        preparation
        + pipelines["pretrain"]
        + training.create_pipeline(phases=every_phase)
        + reporting.create_pipeline(phases=every_phase)
        + analysis.create_pipeline(phases=every_phase, model_kinds=model_kinds)
    )
    return pipelines
