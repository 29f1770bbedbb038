"""Talking MLflow's REST protocol: the JSON mapping (``protocol``) and the HTTP client store."""
