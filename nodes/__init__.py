"""Compatibility with the seed's import paths (`task_scheduler.nodes.base`)."""
