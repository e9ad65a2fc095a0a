"""Kedro hooks of the project, registered in settings.py."""
