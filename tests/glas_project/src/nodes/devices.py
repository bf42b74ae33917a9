import os
import time
from typing import Self

from nodes import journal
from task_scheduler.nodes.base import BaseNode
from task_scheduler.nodes.enums import NodeErrorNextStep


class LabNode(BaseNode):
    """Writes every hook call down, with the arguments the seed's nodes get."""

    def _pre_execution(self, task_id, wf_name, src, dst, args=None):
        journal.write(
            hook="pre",
            node=self.id,
            task_id=task_id,
            wf_name=wf_name,
            src=journal.node_id(src),
            dst=journal.node_id(dst),
            args=args,
        )

    def _post_execution(self, status, msg, task_id, wf_name, src, dst, args=None):
        journal.write(
            hook="post",
            node=self.id,
            status=status,
            msg=msg,
            task_id=task_id,
            wf_name=wf_name,
            src=journal.node_id(src),
            dst=journal.node_id(dst),
            args=args,
        )

    def _work(self, task_id, args):
        journal.write(hook="start", node=self.id, task_id=task_id)
        time.sleep(float((args or {}).get("step_s", 0.1)))
        journal.write(hook="end", node=self.id, task_id=task_id)

    def _restart(self) -> int:
        journal.write(hook="restart", node=self.id)
        return 0


class Hotel(LabNode):
    def _execute(self, src: Self, dst: Self, task_id: str, args: dict = None):
        self._work(task_id, args)
        self.logger.info("plate {} moved", (args or {}).get("plate"))
        return 0, None, None


class Dispenser(LabNode):
    def __init__(self, _id, name, max_volume_ul):
        super().__init__(_id, name)
        self.max_volume_ul = max_volume_ul

    def _execute(self, src, dst, task_id, args=None):
        self._work(task_id, args)
        volume = (args or {}).get("volume_ul", 100)
        if volume > self.max_volume_ul:
            return 2, f"volume {volume} uL exceeds {self.max_volume_ul} uL", "dispense"
        return 0, None, "dispense"


class Reader(LabNode):
    """Jammed while the file `reader-jammed` exists: its failed read is done again on continue (SELF)."""

    def _execute(self, src, dst, task_id, args=None):
        self._work(task_id, args)
        if os.path.exists("reader-jammed"):
            return 5, "plate jammed in the reader", "read"
        return 0, None, "read"

    def next_node_execution(self) -> NodeErrorNextStep:
        return NodeErrorNextStep.SELF
