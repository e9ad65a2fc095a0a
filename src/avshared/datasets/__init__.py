"""Kedro datasets of the project's own, for formats that kedro-datasets does not cover."""
