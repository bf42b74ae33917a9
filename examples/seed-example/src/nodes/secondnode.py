from typing import Self

from task_scheduler.nodes.base import BaseNode


class SecondNode(BaseNode):
    def _execute(self, src: Self, dst: Self, task_id: str, args: dict[str, any] = None) -> tuple[
        int, str | None, str | None]:
        self.logger.info("Executing second node")
        return 0, None, None
