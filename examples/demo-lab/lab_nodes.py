"""The demo lab's drivers: a plate hotel, a robot arm, a liquid handler, a plate reader and a cold
storage. No hardware: each action waits a short, realistic time (scaled by the node property `speed`,
0 in tests) on an event that `_abort()` sets, so an operator's cancel stops a step at once.

The three driver styles the scheduler accepts are all here: the arm returns the seed's
`(status, message, endpoint)`, the dispenser is an `async def _execute`, the others return a StepResult.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from task_scheduler import BaseNode, NodeRef, StepResult
from task_scheduler.engine.errors import StepAbortedError

DEVICE_ERROR = 1  # the device cannot do it now (slot taken, storage full...)
BAD_ARGUMENT = 2  # the step's arguments are wrong: trying again cannot help


class BadArgument(ValueError):
    """A step argument the device cannot accept; its message says which and why."""


class SlotsFileError(ValueError):
    """The hotel's slots file cannot be read: fix it, or delete it (the hotel then starts empty)."""


class SimulatedDevice:
    """What every demo driver shares: abortable waits, restart, reachability and argument checks.

    A mixin rather than a BaseNode subclass, so that it is not registered as a node type itself.
    """

    id: str
    properties: dict[str, Any]
    logger: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # BaseNode's (id, name, properties)
        self._stop = threading.Event()

    def _begin(self) -> None:
        # Cleared before the step logs its first line: an abort that arrives after that line is honoured.
        self._stop.clear()

    def _work(self, seconds: float, what: str) -> None:
        """Spend `seconds` (times the `speed` factor) on an action, or stop at once on abort."""
        if self._stop.wait(seconds * float(self.properties.get("speed", 1.0))):
            raise StepAbortedError(f"{self.id}: {what} aborted")

    async def _work_async(self, seconds: float, what: str) -> None:
        if await asyncio.to_thread(self._stop.wait, seconds * float(self.properties.get("speed", 1.0))):
            raise StepAbortedError(f"{self.id}: {what} aborted")

    def _abort(self) -> None:
        self._stop.set()

    def _restart(self) -> bool:
        self._stop.clear()
        self.logger.info("{}: re-initialised, back to its home position", self.id)
        return self.is_reachable()

    def is_reachable(self) -> bool:
        # A real driver would open its serial port here; `online: false` simulates an unplugged cable.
        return bool(self.properties.get("online", True))

    def _refuse(self, status: int, message: str) -> StepResult:
        self.logger.error(message)
        # Trying bad arguments again cannot help: skip the node's retries, let the operator decide.
        return StepResult(status=status, message=message, retryable=status != BAD_ARGUMENT)


def _plate(args: dict[str, Any], task_id: str) -> str:
    return str(args.get("plate") or f"plate-{task_id}")


def _number(args: dict[str, Any], key: str, default: float) -> float:
    value = args.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadArgument(f"{key} must be a number, got {value!r}")
    return float(value)


def _in_range(name: str, value: float, low: float, high: float, unit: str = "") -> float:
    if not low <= value <= high:
        raise BadArgument(f"{name} {value:g}{unit} is out of range {low:g}-{high:g}{unit}")
    return value


def read_slots(path: Path) -> dict[int, str]:
    """Which slot held which plate when the hotel last moved one; none before its first move."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        slots = json.loads(text)["slots"]
        return {int(slot): str(plate) for slot, plate in slots.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SlotsFileError(
            f"cannot read the hotel's slots from {path} ({type(exc).__name__}: {exc}): it should be "
            '{"slots": {"3": "P-001"}}; fix it, or delete it and the hotel starts empty'
        ) from None


def write_slots(path: Path, inventory: dict[int, str]) -> None:
    """Replace the slots file in one step (a new file renamed over the old one): a worker killed while
    it writes leaves the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"slots": {str(s): p for s, p in sorted(inventory.items())}}, indent=2)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class PlateHotel(SimulatedDevice, BaseNode):
    """A plate hotel: `retrieve` a plate from its slot, or `store` it in a slot (the first free one
    unless `slot` is given). Remembers which slot holds which plate; with the property `slots_file`,
    also across restarts of its worker (the file is read at start and rewritten after each move)."""

    def __init__(self, id: str, name: str, properties: dict[str, Any] | None = None) -> None:
        super().__init__(id, name, properties)
        where = self.properties.get("slots_file")
        self.slots_file = Path(str(where)).expanduser() if where else None
        self.inventory: dict[int, str] = read_slots(self.slots_file) if self.slots_file else {}

    def _moved(self) -> None:
        if self.slots_file is not None:
            write_slots(self.slots_file, self.inventory)

    def _execute(
        self, src: NodeRef | None, dst: NodeRef | None, task_id: str, args: dict[str, Any] | None = None
    ) -> StepResult:
        self._begin()
        args = args or {}
        plate, action = _plate(args, task_id), args.get("action", "retrieve")
        try:
            slot = self._slot(args)
            if action not in ("retrieve", "store"):
                raise BadArgument(f"action must be 'retrieve' or 'store', got {action!r}")
        except BadArgument as exc:
            return self._refuse(BAD_ARGUMENT, str(exc))
        return self._retrieve(plate, slot) if action == "retrieve" else self._store(plate, slot)

    def _slot(self, args: dict[str, Any]) -> int | None:
        if args.get("slot") is None:
            return None
        slots = int(self.properties.get("slots", 20))
        return int(_in_range("slot", _number(args, "slot", 0), 1, slots))

    def _retrieve(self, plate: str, slot: int | None) -> StepResult:
        known = next((s for s, p in self.inventory.items() if p == plate), None)
        slot = known or slot
        if slot is not None and self.inventory.get(slot, plate) != plate:
            return self._refuse(DEVICE_ERROR, f"slot {slot} holds plate {self.inventory[slot]}, not {plate}")
        # A plate the hotel has not stored itself was put on its load port by an operator.
        where = "the load port" if slot is None else f"slot {slot}"
        self.logger.info("{}: fetching plate {} from {}", self.id, plate, where)
        self._work(0.8, f"fetching plate {plate}")
        if self.inventory.pop(slot or 0, None) is not None:
            self._moved()
        self.logger.success("{}: plate {} is on the transfer position", self.id, plate)
        return StepResult(message=f"plate {plate} retrieved from {where}", output={"slot": slot})

    def _store(self, plate: str, slot: int | None) -> StepResult:
        slots = int(self.properties.get("slots", 20))
        free = [s for s in range(1, slots + 1) if s not in self.inventory]
        slot = slot or (free[0] if free else None)
        if slot is None:
            return self._refuse(DEVICE_ERROR, f"the hotel is full ({slots} slots)")
        if self.inventory.get(slot, plate) != plate:
            return self._refuse(DEVICE_ERROR, f"slot {slot} already holds plate {self.inventory[slot]}")
        self.logger.info("{}: storing plate {} in slot {}", self.id, plate, slot)
        self._work(0.8, f"storing plate {plate}")
        self.inventory[slot] = plate
        self._moved()
        self.logger.success("{}: plate {} stored in slot {}", self.id, plate, slot)
        return StepResult(message=f"plate {plate} stored in slot {slot}", output={"slot": slot})


class RobotArm(SimulatedDevice, BaseNode):
    """A plate-handling arm: moves a plate from the previous step's node (`src`) to the next one's
    (`dst`); with no such node, from or to its home position (the bench). Seed-style driver."""

    def _execute(
        self, src: NodeRef | None, dst: NodeRef | None, task_id: str, args: dict[str, Any] | None = None
    ) -> tuple[int, str | None, str | None]:
        self._begin()
        plate = _plate(args or {}, task_id)
        home = str(self.properties.get("home", "bench"))
        source, target = (src.id if src else home), (dst.id if dst else home)
        unreachable = [p for p in (source, target) if p != home and p not in self._reach()]
        if unreachable:
            message = f"the arm cannot reach {unreachable[0]!r}; it reaches {', '.join(self._reach())}"
            self.logger.error(message)
            return BAD_ARGUMENT, message, None
        self.logger.info("{}: moving plate {} from {} to {}", self.id, plate, source, target)
        self._work(1.5, f"moving plate {plate}")
        self.logger.success("{}: plate {} placed on {}", self.id, plate, target)
        return 0, f"plate {plate} moved from {source} to {target}", target

    def _reach(self) -> list[str]:
        return [str(p) for p in self.properties.get("reach", [])]

    def _restart(self) -> bool:
        self.logger.info("{}: homing all axes", self.id)
        return super()._restart()


class LiquidHandler(SimulatedDevice, BaseNode):
    """A liquid handler: doses `volume_ul` of `reagent` into every well (async driver, as if it spoke
    to its pump over an asyncio serial link)."""

    async def _execute(
        self, src: NodeRef | None, dst: NodeRef | None, task_id: str, args: dict[str, Any] | None = None
    ) -> StepResult:
        self._begin()
        args = args or {}
        try:
            volume_ul, reagent = self._volume(args), self._reagent(args)
        except BadArgument as exc:
            return self._refuse(BAD_ARGUMENT, str(exc))
        plate = _plate(args, task_id)
        self.logger.info("{}: dosing {:g} µL of {} into plate {}", self.id, volume_ul, reagent, plate)
        await self._work_async(0.3 + volume_ul / 1000, f"dosing plate {plate}")
        self.logger.success("{}: plate {} dosed", self.id, plate)
        return StepResult(
            message=f"{volume_ul:g} µL of {reagent} dosed into plate {plate}",
            output={"reagent": reagent, "volume_ul": volume_ul},
        )

    def _volume(self, args: dict[str, Any]) -> float:
        volume_ul = _number(args, "volume_ul", float(self.properties.get("default_volume_ul", 100)))
        capacity_ul = float(self.properties.get("capacity_ul", 1000))
        if volume_ul <= 0:
            raise BadArgument(f"volume must be positive, got {volume_ul:g} µL")
        if volume_ul > capacity_ul:
            raise BadArgument(f"volume {volume_ul:g} µL exceeds capacity {capacity_ul:g} µL")
        return volume_ul

    def _reagent(self, args: dict[str, Any]) -> str:
        reagents = [str(r) for r in self.properties.get("reagents", ["water"])]
        reagent = str(args.get("reagent", reagents[0]))
        if reagent not in reagents:
            raise BadArgument(f"unknown reagent {reagent!r}; loaded reagents: {', '.join(reagents)}")
        return reagent


class PlateReader(SimulatedDevice, BaseNode):
    """An absorbance reader: reads every well at `wavelength_nm`. The data are pseudo-random but
    deterministic: the same plate at the same wavelength always reads the same."""

    def _execute(
        self, src: NodeRef | None, dst: NodeRef | None, task_id: str, args: dict[str, Any] | None = None
    ) -> StepResult:
        self._begin()
        args = args or {}
        try:
            wavelength_nm = self._wavelength(args)
        except BadArgument as exc:
            return self._refuse(BAD_ARGUMENT, str(exc))
        plate = _plate(args, task_id)
        self.logger.info("{}: reading plate {} at {} nm", self.id, plate, wavelength_nm)
        self._work(2.0, f"reading plate {plate}")
        absorbance = absorbances(plate, wavelength_nm, int(self.properties.get("wells", 96)))
        self.logger.success("{}: plate {} read, mean absorbance {:.3f}", self.id, plate, _mean(absorbance))
        return StepResult(
            message=f"plate {plate} read at {wavelength_nm} nm",
            output={"plate": plate, "wavelength_nm": wavelength_nm, "absorbance": absorbance},
        )

    def _wavelength(self, args: dict[str, Any]) -> int:
        low, high = self.properties.get("wavelength_range_nm", [230, 1000])
        wavelength_nm = _number(
            args, "wavelength_nm", float(self.properties.get("default_wavelength_nm", 450))
        )
        return int(_in_range("wavelength", wavelength_nm, low, high, " nm"))


def absorbances(plate: str, wavelength_nm: int, wells: int) -> list[float]:
    """One absorbance per well, from 0.05 to 2.0, derived from a hash of plate, wavelength and well."""
    values = []
    for well in range(wells):
        digest = hashlib.sha256(f"{plate}|{wavelength_nm}|{well}".encode()).digest()
        values.append(round(0.05 + 1.95 * int.from_bytes(digest[:4], "big") / 2**32, 3))
    return values


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


class Incubator(SimulatedDevice, BaseNode):
    """Keeps plates at `temperature_c` for `seconds` (default: its property `default_seconds`). Its
    `capacity` in nodes.json lets several steps incubate at once: each runs in a thread of its own, so
    it watches its own step's abort (`abort_requested`), never a flag the others share."""

    def _execute(
        self, src: NodeRef | None, dst: NodeRef | None, task_id: str, args: dict[str, Any] | None = None
    ) -> StepResult:
        args = args or {}
        plate = _plate(args, task_id)
        seconds = _in_range(
            "seconds", _number(args, "seconds", self.properties.get("default_seconds", 8)), 0, 86400
        )
        temperature_c = self.properties.get("temperature_c", 37)
        self.logger.info(
            "{}: incubating plate {} at {} °C for {:g} s", self.id, plate, temperature_c, seconds
        )
        ends = time.monotonic() + seconds * float(self.properties.get("speed", 1.0))
        while (left := ends - time.monotonic()) > 0:
            if self.abort_requested:
                raise StepAbortedError(f"{self.id}: incubation of plate {plate} aborted")
            time.sleep(min(0.1, left))
        self.logger.success("{}: plate {} incubated", self.id, plate)
        return StepResult(
            message=f"plate {plate} incubated {seconds:g} s at {temperature_c} °C",
            output={"plate": plate, "seconds": seconds, "temperature_c": temperature_c},
        )

    def _abort(self) -> None:
        """Each incubation watches its own step's abort: nothing shared to stop here."""


class ColdStorage(SimulatedDevice, BaseNode):
    """A refrigerated plate store: takes a plate into its first free position."""

    def __init__(self, id: str, name: str, properties: dict[str, Any] | None = None) -> None:
        super().__init__(id, name, properties)
        self.positions: dict[int, str] = {}

    def _execute(
        self, src: NodeRef | None, dst: NodeRef | None, task_id: str, args: dict[str, Any] | None = None
    ) -> StepResult:
        self._begin()
        plate = _plate(args or {}, task_id)
        capacity = int(self.properties.get("capacity", 50))
        free = [p for p in range(1, capacity + 1) if p not in self.positions]
        if not free:
            return self._refuse(DEVICE_ERROR, f"the cold storage is full ({capacity} positions)")
        temperature_c = self.properties.get("temperature_c", 4)
        self.logger.info("{}: storing plate {} at {} °C", self.id, plate, temperature_c)
        self._work(0.6, f"storing plate {plate}")
        self.positions[free[0]] = plate
        self.logger.success("{}: plate {} stored in position {}", self.id, plate, free[0])
        return StepResult(
            message=f"plate {plate} stored in position {free[0]} at {temperature_c} °C",
            output={"plate": plate, "position": free[0], "temperature_c": temperature_c},
        )
