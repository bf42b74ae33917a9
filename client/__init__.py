"""The client layer: the HTTP client of our API (http.py), used by the CLI, and handles of our
workflows (handles.py), used by the API and the worker. Never imported by workflow or activity code."""
