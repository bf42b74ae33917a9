"""The bench's table: one row per figure (ours, the baseline, their ratio), printed and written as JSON."""

from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Value = float | int | str | None


@dataclass(frozen=True)
class Row:
    figure: str
    ours: Value
    baseline: Value = None
    unit: str = ""
    target: str = ""  # e.g. "<= 2x": the target for the ratio

    @property
    def ratio(self) -> float | None:
        if not isinstance(self.ours, int | float) or not isinstance(self.baseline, int | float):
            return None
        if self.baseline == 0 or math.isnan(self.ours) or math.isnan(self.baseline):
            return None
        return self.ours / self.baseline

    def cells(self) -> list[str]:
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}x"
        return [self.figure, _cell(self.ours, self.unit), _cell(self.baseline, self.unit), ratio, self.target]

    def text(self) -> str:
        figure, ours, base, ratio, target = self.cells()
        return (
            f"{figure}: ours {ours}, baseline {base}"
            + (f", {ratio}" if ratio else "")
            + (f" (target {target})" if target else "")
        )


def _cell(value: Value, unit: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g} {unit}".strip() if abs(value) < 100 else f"{value:.0f} {unit}".strip()
    return f"{value} {unit}".strip()


HEADER = ["figure", "ours", "baseline", "ratio", "target"]


def table(rows: list[Row]) -> str:
    lines = [HEADER, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    text = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in lines]
    text.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(line.rstrip() for line in text)


def write_json(path: Path, rows: list[Row], meta: dict[str, Any]) -> None:
    data = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **meta,
        "rows": [_no_nan({**asdict(row), "ratio": row.ratio}) for row in rows],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def _no_nan(row: dict[str, Any]) -> dict[str, Any]:
    """NaN (a figure that could not be measured) is not JSON: null."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


def machine() -> dict[str, Any]:
    with open("/proc/loadavg", encoding="utf-8") as loadavg:
        load = loadavg.read().split()[:3]
    return {
        "cpus": _cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "load_average": [float(x) for x in load],
    }


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
