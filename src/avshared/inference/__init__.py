"""A trained phase applied to new recordings (``prediction``) and the media-in MLflow model, logged
and registered (``serving``: the model registry helpers the datasets use)."""
