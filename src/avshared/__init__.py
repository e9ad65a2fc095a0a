"""avshared: audio-visual emotion recognition with one shared Transformer encoder."""

__version__ = "0.1.0"
