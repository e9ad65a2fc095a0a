"""Wiring of the ``split`` pipeline."""

from kedro.pipeline import Node, Pipeline

from .nodes import split_clips


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=split_clips,
                inputs=["clip_manifest", "params:split"],
                outputs=["split", "split_unmatched_clips"],
                name="split_clips",
            )
        ]
    )
