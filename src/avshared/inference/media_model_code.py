"""MLflow's models-from-code entry of the media model (avshared.inference.serving logs this file,
and MLflow runs it when the model is loaded), so that no pickled Python object goes into the model.
Nothing in avshared imports it."""

import mlflow

from avshared.inference.serving import MediaEmotionModel

mlflow.models.set_model(MediaEmotionModel())
