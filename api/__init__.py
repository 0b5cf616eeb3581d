"""The REST API (SPEC 4.2) and, later, the MLflow-compatible API: surfaces that parse,
fetch with authorisation, call one service and render. Routes are assembled in api/urls.py."""
