"""The analysis template, instantiated once per two-modality phase under the phase's namespace, and
the shared-versus-separate comparison beside the report.

Each phase's outputs are ``<phase>.<name>`` (``bimodal.alignment``, ``bimodal.attention_by_layer``,
...: the catalog's ``{phase}.*`` factories, which log them into the phase's MLflow run through
avshared.hooks.tracking.PhaseRunsHook, as training's confusion matrix is). It reads the phase's
``model_weights``, ``training_summary``, ``targets`` and ``test_predictions`` and the shared
upstream datasets (the feature stores, crowd_labels) under their own names. Its first node loads the
phase's model and test clips once, into ``<phase>.analysed_inputs`` (a MemoryDataset, never
written), for the nodes that run the model.

Which phases: every phase of ``PHASE_MODALITIES`` with both senses (the alignment of the senses
needs both: shared early, late or mid fusion, separate encoders); the cross-modal attention shares
and rollouts only where the phase's model kind puts both senses through one encoder together
(``analysis.attention.has_joint_encoder``: the ``shared`` kind; not mid fusion, whose lower layers
see one sense), so a new row is picked up from PHASE_MODALITIES and its model kind without a code
change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from kedro.pipeline import Node, Pipeline

from avshared.analysis.attention import has_joint_encoder
from avshared.training.phases import DEFAULT_PHASES, PHASE_MODALITIES

from .nodes import (
    analysed_inputs,
    compare_shared_and_separate,
    correlate_vote_disagreement,
    draw_attention_rollouts,
    embed_test_clips,
    map_embeddings,
    measure_alignment,
    measure_attention_shares,
    plot_attention_by_layer,
    plot_embedding_map,
    plot_shared_and_separate_maps,
    summarise_attention_shares,
)

#: Datasets the template reads that other pipelines make; they keep their names in every phase.
SHARED_INPUTS: tuple[str, ...] = ("log_mel_spectrograms", "face_frames", "crowd_labels")
#: The shared-encoder and the separate-encoders phases whose alignment is compared, clip by clip,
#: when both are analysed.
SHARED_VS_SEPARATE: tuple[str, str] = ("bimodal", "baseline")


def analysed_phases(phases: Iterable[str]) -> tuple[str, ...]:
    """The phases among ``phases`` that see both senses: those whose alignment can be measured."""
    return tuple(phase for phase in phases if set(PHASE_MODALITIES[phase]) == {"audio", "video"})


def _loading_node() -> Node:
    """The phase's model and test clips, loaded once for every node that runs the model."""
    return Node(
        analysed_inputs,
        inputs={
            "model_weights": "model_weights",
            "training_summary": "training_summary",
            "targets": "targets",
            "log_mel_spectrograms": "log_mel_spectrograms",
            "face_frames": "face_frames",
            "clips": "params:analysis.clips",
        },
        outputs="analysed_inputs",
        name="load_analysed_inputs",
    )


def _alignment_nodes() -> list[Node]:
    return [
        Node(
            embed_test_clips,
            inputs=["analysed_inputs", "params:analysis.clips", "params:analysis.alignment"],
            outputs=["clip_embeddings", "analysed_clips"],
            name="embed_test_clips",
        ),
        Node(
            measure_alignment,
            inputs=[
                "clip_embeddings",
                "analysed_clips",
                "training_summary",
                "params:analysis.alignment",
                "params:analysis.bootstrap",
            ],
            outputs="alignment",
            name="measure_alignment",
        ),
        Node(
            map_embeddings,
            inputs=["clip_embeddings", "analysed_clips", "params:analysis.projection"],
            outputs="embedding_map",
            name="map_embeddings",
        ),
        Node(
            plot_embedding_map,
            inputs=["embedding_map", "training_summary"],
            outputs="embedding_map_figure",
            name="plot_embedding_map",
        ),
        Node(
            correlate_vote_disagreement,
            inputs=[
                "clip_embeddings",
                "analysed_clips",
                "crowd_labels",
                "training_summary",
                "params:analysis.bootstrap",
            ],
            outputs=["disagreement_correlation", "disagreement_figure"],
            name="correlate_vote_disagreement",
        ),
    ]


def _attention_nodes() -> list[Node]:
    return [
        Node(
            measure_attention_shares,
            inputs=["analysed_inputs", "params:analysis.clips"],
            outputs="clip_attention_shares",
            name="measure_attention_shares",
        ),
        Node(
            summarise_attention_shares,
            inputs=["clip_attention_shares", "training_summary"],
            outputs=["attention_shares", "attention_shares_by_emotion"],
            name="summarise_attention_shares",
        ),
        Node(
            plot_attention_by_layer,
            inputs=["clip_attention_shares", "training_summary"],
            outputs="attention_by_layer",
            name="plot_attention_by_layer",
        ),
        Node(
            draw_attention_rollouts,
            inputs=["analysed_inputs", "test_predictions", "params:analysis.rollout"],
            outputs="attention_rollout",
            name="draw_attention_rollouts",
        ),
    ]


def create_phase_pipeline(phase: str, *, attention: bool) -> Pipeline:
    """The template under namespace ``phase``: the model and test clips loaded once, the
    embeddings, their alignment, map and disagreement correlation and, with ``attention``, the
    cross-modal attention shares and rollouts."""
    if phase not in analysed_phases(PHASE_MODALITIES):
        raise ValueError(
            f"phase {phase!r} is not a two-modality phase of PHASE_MODALITIES; those are "
            f"{analysed_phases(PHASE_MODALITIES)}"
        )
    template = Pipeline(
        [_loading_node(), *_alignment_nodes(), *(_attention_nodes() if attention else [])]
    )
    return Pipeline(
        template,
        namespace=phase,
        inputs=set(SHARED_INPUTS),
        # Every phase reads the one parameters_analysis.yml (not analysis.<phase>.*).
        parameters={
            name.removeprefix("params:") for name in template.inputs() if name.startswith("params:")
        },
        prefix_datasets_with_namespace=True,
    )


def comparison_pipeline() -> Pipeline:
    """The shared-encoder phase against the separate-encoders phase (``SHARED_VS_SEPARATE``):
    their paired alignment table and their maps side by side, beside the report."""
    shared, separate = SHARED_VS_SEPARATE
    return Pipeline(
        [
            Node(
                compare_shared_and_separate,
                inputs={
                    "shared_embeddings": f"{shared}.clip_embeddings",
                    "shared_clips": f"{shared}.analysed_clips",
                    "shared_summary": f"{shared}.training_summary",
                    "separate_embeddings": f"{separate}.clip_embeddings",
                    "separate_clips": f"{separate}.analysed_clips",
                    "separate_summary": f"{separate}.training_summary",
                    "alignment": "params:analysis.alignment",
                    "bootstrap": "params:analysis.bootstrap",
                },
                outputs="alignment_comparison",
                name="compare_shared_and_separate",
            ),
            Node(
                plot_shared_and_separate_maps,
                inputs=[
                    f"{shared}.embedding_map",
                    f"{shared}.training_summary",
                    f"{separate}.embedding_map",
                    f"{separate}.training_summary",
                ],
                outputs="embedding_maps_figure",
                name="plot_shared_and_separate_maps",
            ),
        ]
    )


def create_pipeline(
    phases: Iterable[str] = DEFAULT_PHASES, *, model_kinds: Mapping[str, str], **kwargs
) -> Pipeline:
    """The analysis of every two-modality phase among ``phases`` (``analysed_phases``: shared
    early, late or mid fusion, separate encoders), with cross-modal attention for those whose
    model kind (``model_kinds``: phase -> kind, as the phase's parameters set it) has a joint
    encoder, and the shared-versus-separate comparison when both of its phases are among them."""
    rows = analysed_phases(phases)
    missing = [phase for phase in rows if phase not in model_kinds]
    if missing:
        raise ValueError(f"no model kind given for the phases {missing}")
    pipeline = sum(
        (
            create_phase_pipeline(phase, attention=has_joint_encoder(model_kinds[phase]))
            for phase in rows
        ),
        Pipeline([]),
    )
    if set(SHARED_VS_SEPARATE) <= set(rows):
        pipeline += comparison_pipeline()
    return pipeline
