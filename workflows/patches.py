"""What a patch will answer, asked before the point where its marker goes into the history.

`workflow.patched(id)` answers and writes its marker at once. A ledger must decide whether to wake for a
node's ERROR (TELL_NODE_ERRORS) when the error happens, while the code that added the wake-up wrote the
marker later, after the wake-up had cancelled the holder-check timer: writing it earlier would put the
commands in another order than those histories hold. So the decision is read here, and
`workflow.patched` is still called where the marker was always written.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.workflow import _Runtime


def patch_in_effect(patch_id: str) -> bool:
    """What `workflow.patched(patch_id)` would answer now, without writing its marker: True in a run
    going forward; in a replay, True if the history holds the marker (the SDK is told at the start of
    the activation that wrote it). The SDK has no public way to ask this (temporalio 1.35): its
    workflow instance's memo and notified patches are read. tests/workflows/test_replay.py replays
    ledger histories written before and after TELL_NODE_ERRORS, and fails if this stops answering."""
    instance = vars(_Runtime.current())
    memoized: dict[str, bool] = instance["_patches_memoized"]
    if patch_id in memoized:
        return memoized[patch_id]
    return not workflow.unsafe.is_replaying() or patch_id in instance["_patches_notified"]
