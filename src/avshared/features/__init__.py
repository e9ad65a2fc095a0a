"""Feature extraction without Kedro: log-mel spectrograms, face crops and the worker pool."""
