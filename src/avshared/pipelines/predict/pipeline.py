"""Wiring of the ``predict`` pipeline.

kedro run --pipelines=predict --params=predict.inputs=PATH[,predict.model=PHASE_OR_MLFLOW_URI]
"""

from kedro.pipeline import Node, Pipeline

from .nodes import find_prediction_inputs, predict_emotions


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                func=find_prediction_inputs,
                inputs="params:predict.inputs",
                outputs="prediction_inputs",
                name="find_prediction_inputs",
            ),
            Node(
                func=predict_emotions,
                inputs=["prediction_inputs", "prediction_model", "params:predict.options"],
                outputs="predictions",
                name="predict_emotions",
            ),
        ]
    )
