"""The bench's node: sleeps `args["sleep_s"]` seconds (0: a no-op) and logs every driver start and end.

Each line of the log named in the node's properties (relative to the worker's working directory):
`<start|end> <unix time> <task id> <node id> <step> <n> <pid>`, where `n` counts the driver starts of
this task's step on this node across worker restarts (read from the log once, when the node is built).
A driver is not told Temporal's attempt (the seed's `_execute` signature): `n` is what counts for "ran
twice". The bench's plain baseline activity writes the same lines (bench/baseline.py).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from task_scheduler import BaseNode


class BenchNode(BaseNode):
    def __init__(self, id: str, name: str, properties: dict[str, Any] | None = None) -> None:
        super().__init__(id, name, properties)
        self.log_path = Path(self.properties.get("log", "drivers.log")).resolve()
        self.starts = _starts_so_far(self.log_path, id)

    def _execute(self, src: Any, dst: Any, task_id: str, args: dict[str, Any] | None = None) -> Any:
        args = args or {}
        step = int(args.get("step", 0))
        self.starts[(task_id, step)] += 1
        self._log("start", task_id, step)
        sleep_s = float(args.get("sleep_s", 0))
        if sleep_s > 0:
            time.sleep(sleep_s)
        self._log("end", task_id, step)
        return 0, "ok", None

    def _log(self, event: str, task_id: str, step: int) -> None:
        n = self.starts[(task_id, step)]
        line = f"{event} {time.time():.6f} {task_id} {self.id} {step} {n} {os.getpid()}\n"
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(line)


def _starts_so_far(log_path: Path, node_id: str) -> Counter[tuple[str, int]]:
    starts: Counter[tuple[str, int]] = Counter()
    if log_path.exists():
        for line in log_path.read_text(encoding="utf-8").splitlines():
            parts = line.split()
            if len(parts) == 7 and parts[0] == "start" and parts[3] == node_id:
                starts[(parts[2], int(parts[4]))] += 1
    return starts
