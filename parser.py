"""The seed's import path `task_scheduler.parser`."""

from .glas.parser import parse_args

__all__ = ["parse_args"]
