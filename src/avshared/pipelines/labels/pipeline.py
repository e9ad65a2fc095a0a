"""The labels pipeline: CREMA-D crowd ratings -> crowd_labels and human_accuracy (no media)."""

from kedro.pipeline import Node, Pipeline

from .nodes import build_crowd_labels, select_tabulated_votes, summarise_human_accuracy


def create_pipeline(**kwargs) -> Pipeline:
    """Tabulate the ratings (finishedResponses.csv if the root has it, else tabulatedVotes.csv),
    turn them into one label row per clip and modality, and measure the raters' accuracy."""
    return Pipeline(
        [
            Node(
                select_tabulated_votes,
                inputs=[
                    "crema_d_finished_responses",
                    "crema_d_tabulated_votes",
                    "params:crema_d_root",
                ],
                outputs=["crowd_tabulated_votes", "crowd_ratings_source"],
                name="select_tabulated_votes",
            ),
            Node(
                build_crowd_labels,
                inputs=[
                    "crowd_tabulated_votes",
                    "crowd_ratings_source",
                    "params:labels.soft_label_pseudocount",
                ],
                outputs="crowd_labels",
                name="build_crowd_labels",
            ),
            Node(
                summarise_human_accuracy,
                inputs="crowd_labels",
                outputs="human_accuracy",
                name="summarise_human_accuracy",
            ),
        ]
    )
