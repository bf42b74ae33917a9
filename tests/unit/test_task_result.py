"""A task's result stays under Temporal's payload limit: the newest outputs are kept, the oldest
left out and counted (the step records still hold them)."""

from __future__ import annotations

from task_scheduler.engine.task_state import RESULT_OUTPUTS_BYTES, bounded_outputs


def test_bounded_outputs_keeps_every_output_that_fits() -> None:
    outputs, omitted = bounded_outputs([{"a": 1}, None, {"b": 2}])

    assert (outputs, omitted) == ([{"a": 1}, {}, {"b": 2}], 0)


def test_bounded_outputs_leaves_out_the_oldest_past_the_budget() -> None:
    big = {"trace": "x" * (RESULT_OUTPUTS_BYTES // 3)}
    outputs, omitted = bounded_outputs([big, big, big, {"last": True}])

    assert omitted == 1
    assert outputs == [{}, big, big, {"last": True}]
