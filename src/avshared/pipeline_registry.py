"""Project pipelines: the data pipelines, one pipeline per training phase, and ``__default__``.

``kedro run --pipelines=<phase>`` (video, audio, bimodal, baseline) runs what that phase needs from
ingestion, labels, split and features (the video phase extracts no spectrograms), then trains and
evaluates it. ``kedro run`` runs every data pipeline, the default phases
(``training.DEFAULT_PHASES``) and the report; ``kedro run --pipelines=comparison`` runs every
phase (adding the label-source and curriculum rows) and the report of them all; ``demo_data``
and ``predict`` only ever run when named.

The registry is explicit rather than ``find_pipelines()``: Kedro 1.7 loads only the packages named
on the command line, and the phase pipelines are not packages of their own.
"""

from kedro.pipeline import Pipeline

from avshared.pipelines import (
    demo_data,
    features,
    ingestion,
    labels,
    predict,
    reporting,
    split,
    training,
)


def data_preparation() -> Pipeline:
    """CREMA-D root -> clip manifest, crowd labels, split and features."""
    return (
        ingestion.create_pipeline()
        + labels.create_pipeline()
        + split.create_pipeline()
        + features.create_pipeline()
    )


def phase_pipeline(phase: str, preparation: Pipeline) -> Pipeline:
    """A phase's training and evaluation, preceded by the part of ``preparation`` it needs."""
    phase_training = training.create_phase_pipeline(phase)
    needed = phase_training.inputs() & preparation.all_outputs()
    return preparation.to_outputs(*needed) + phase_training


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
    }
    pipelines |= {phase: phase_pipeline(phase, preparation) for phase in training.PHASE_MODALITIES}
    pipelines["__default__"] = preparation + pipelines["training"] + pipelines["reporting"]
    every_phase = tuple(training.PHASE_MODALITIES)
    pipelines["comparison"] = (
        preparation
        + training.create_pipeline(phases=every_phase)
        + reporting.create_pipeline(phases=every_phase)
    )
    return pipelines
