"""Real separate network hosts on this machine: a Linux network namespace per host (the lab's server,
each lab PC), each on one bridge of the root namespace through a veth pair, with addresses from
198.18.0.0/15 only (the benchmarking range). The test process stays in the root namespace and reaches
every host over the bridge. Processes run in a host with `ip netns exec` (which execs: the Popen's pid is
the process itself, checked), each in its own session, and are stopped by their pid.

Every name is made here, unique per run (`ts` + 4 hex digits); a record of them is kept in a file so a
run that died before its teardown (SIGKILL) is cleaned up by the next one: only the names it recorded.
"""

from __future__ import annotations

import atexit
import ctypes
import dataclasses
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from dev_stack import wait_until

from task_scheduler.api.security import Role, create_token

IP = shutil.which("ip")
NO_IP_REASON = "iproute2's `ip` is not on the PATH: the multi-PC tests need it for network namespaces"
RANGE = ipaddress.ip_network("198.18.0.0/15")
RECORDS = Path(tempfile.gettempdir()) / "task-scheduler-netns"
EXEC_CHECK_S = 10.0
PR_SET_PDEATHSIG = 1
CLONE_NEWUTS = 0x04000000


class NetnsError(RuntimeError):
    """An `ip` command of the harness failed."""


def ip(*args: str) -> str:
    """Run `ip ARGS`; its output, or NetnsError with its message."""
    assert IP is not None, NO_IP_REASON
    done = subprocess.run([IP, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def _enter_host(hostname: str) -> Callable[[], None]:
    """What the child does before exec: SIGKILL when the test process dies (even by SIGKILL; kept
    across exec), and a host name of its own (a UTS namespace: a worker's identity names its PC)."""

    def enter() -> None:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        name = hostname.encode()
        if libc.unshare(CLONE_NEWUTS) != 0 or libc.sethostname(name, len(name)) != 0:
            raise OSError(ctypes.get_errno(), f"cannot set the host name {hostname}")

    return enter


def _start_ticks(pid: int) -> str | None:
    """A process's start time (field 22 of /proc/PID/stat): a pid and this name one process, reuse aside."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _inode(path: str) -> int:
    return os.stat(path).st_ino


@dataclass
class Host:
    """One network host: a namespace with one address, linked to the bridge by a veth pair."""

    name: str  # the lab's name for it: "server", "pc-1"
    netns: str
    link: str  # the veth end on the bridge (root namespace): `ip link set LINK down` cuts the host off
    inside: str  # the veth end in the namespace
    address: str

    @property
    def hostname(self) -> str:
        return self.netns

    @property
    def netns_inode(self) -> int:
        """What /proc/<pid>/ns/net of a process in this host points to."""
        return _inode(f"/run/netns/{self.netns}")


@dataclass
class HostProcess:
    """A process running in a host, its output in a log file."""

    host: Host
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    ended_at: float | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def is_running(self) -> bool:
        return self.process.poll() is None

    def check_running(self) -> None:
        """Fail, showing its output, if the process has exited."""
        if not self.is_running():
            raise AssertionError(f"{self.name} exited with {self.process.returncode}:\n{self.output()}")

    def output(self, lines: int = 60) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def terminate(self, grace_s: float = 10.0) -> int:
        """SIGTERM by pid, SIGKILL if still alive after `grace_s`; reaped; its exit code."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
        try:
            return self._reaped(self.process.wait(timeout=grace_s))
        except subprocess.TimeoutExpired:
            return self.kill()

    def kill(self) -> int:
        """SIGKILL by pid, as a crash or a power cut would; reaped."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        return self._reaped(self.process.wait())

    def _reaped(self, code: int) -> int:
        if self.ended_at is None:
            self.ended_at = time.time()  # the drivers' clock: a run cut off by the end ended by then
        return code


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 of 198.18.0.0/15 that no interface of the root namespace uses now."""
    used = [ipaddress.ip_interface(word) for word in ip("-o", "-4", "addr", "show").split() if "/" in word]
    taken = {iface.network.supernet(new_prefix=24) for iface in used if iface.ip in RANGE}
    free = [net for net in RANGE.subnets(new_prefix=24) if net not in taken]
    return free[secrets.randbelow(len(free))]


@dataclass
class Lan:
    """One bridge and the hosts on it; `remove()` undoes everything (idempotent, also at exit)."""

    folder: Path  # process logs
    prefix: str = field(default_factory=lambda: "ts" + secrets.token_hex(2))
    subnet: ipaddress.IPv4Network = field(default_factory=_free_subnet)
    hosts: dict[str, Host] = field(default_factory=dict)
    processes: list[HostProcess] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)

    @property
    def bridge(self) -> str:
        return f"{self.prefix}br"

    @property
    def gateway(self) -> str:
        """The root namespace's address on the bridge (where the test process is seen from)."""
        return str(self.subnet[1])

    @property
    def record(self) -> Path:
        return RECORDS / f"{self.prefix}.json"

    def create(self) -> None:
        remove_leftovers()
        atexit.register(self.remove)
        self._made(links=[self.bridge])
        ip("link", "add", self.bridge, "type", "bridge")
        ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
        ip("link", "set", self.bridge, "up")

    def add_host(self, name: str, last_octet: int) -> Host:
        index = len(self.hosts) + 1
        host = Host(
            name=name,
            netns=f"{self.prefix}-{name}",
            link=f"{self.prefix}h{index}",
            inside=f"{self.prefix}p{index}",
            address=str(self.subnet[last_octet]),
        )
        self._made(namespaces=[host.netns], links=[host.link])
        ip("netns", "add", host.netns)
        ip("link", "add", host.link, "type", "veth", "peer", "name", host.inside)
        ip("link", "set", host.inside, "netns", host.netns)
        ip("link", "set", host.link, "master", self.bridge)
        ip("link", "set", host.link, "up")
        ip("-n", host.netns, "link", "set", "lo", "up")
        ip("-n", host.netns, "addr", "add", f"{host.address}/{self.subnet.prefixlen}", "dev", host.inside)
        ip("-n", host.netns, "link", "set", host.inside, "up")
        self.hosts[name] = host
        return host

    def cut(self, name: str) -> None:
        """Pull the host's network cable: its link on the bridge goes down."""
        ip("link", "set", self.hosts[name].link, "down")

    def restore(self, name: str) -> None:
        ip("link", "set", self.hosts[name].link, "up")

    def run(
        self,
        host_name: str,
        name: str,
        command: Sequence[str],
        env: Mapping[str, str],
        cwd: Path,
    ) -> HostProcess:
        """Start `command` in the host, in its own session, output to `<folder>/<name>.log` (appended)."""
        host = self.hosts[host_name]
        log = self.folder / f"{name}.log"
        assert IP is not None
        with log.open("ab") as sink:
            process = subprocess.Popen(
                [IP, "netns", "exec", host.netns, *command],
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_enter_host(host.hostname),
            )
        started = HostProcess(host, name, process, log)
        self.processes.append(started)
        self._check_exec(started, command[0])
        return started

    def _check_exec(self, started: HostProcess, program: str) -> None:
        """`ip netns exec` entered the namespace and exec'd: the pid is the program's, in the host."""
        deadline = time.monotonic() + EXEC_CHECK_S
        while time.monotonic() < deadline:
            if not started.is_running():
                return  # a short command, done already: its exit code tells the caller
            try:
                in_host = _inode(f"/proc/{started.pid}/ns/net") == started.host.netns_inode
                cmdline = Path(f"/proc/{started.pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                in_host, cmdline = False, []
            if in_host and Path(program).name.encode() in b" ".join(cmdline[:2]):
                return
            time.sleep(0.01)
        raise NetnsError(f"{started.name} (pid {started.pid}) is not {program} in {started.host.netns}")

    def remove(self) -> None:
        """Stop every process (by pid), delete every link and namespace made (by name), forget them."""
        for started in self.processes:
            started.terminate(grace_s=5.0)
        self.processes.clear()
        _delete(self.links, self.namespaces)
        self.links.clear()
        self.namespaces.clear()
        self.record.unlink(missing_ok=True)
        atexit.unregister(self.remove)

    def _made(self, namespaces: Sequence[str] = (), links: Sequence[str] = ()) -> None:
        """Write the names down before making them: a run killed meanwhile leaves a record of them."""
        self.namespaces.extend(namespaces)
        self.links.extend(links)
        RECORDS.mkdir(parents=True, exist_ok=True)
        owner = {"pid": os.getpid(), "started": _start_ticks(os.getpid())}
        record = {"owner": owner, "namespaces": self.namespaces, "links": self.links}
        self.record.write_text(json.dumps(record), encoding="utf-8")


def _delete(links: Sequence[str], namespaces: Sequence[str]) -> None:
    """Delete links (a veth pair goes with either end) and namespaces; those already gone are fine."""
    existing_links = {line.split(": ")[1].split("@")[0] for line in ip("-o", "link", "show").splitlines()}
    existing_namespaces = {line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()}
    for link in reversed(links):
        if link in existing_links:
            ip("link", "del", link)
    for namespace in namespaces:
        if namespace in existing_namespaces:
            ip("netns", "del", namespace)


def remove_leftovers() -> None:
    """Remove what earlier runs recorded and did not remove: runs whose test process is gone."""
    for record_file in sorted(RECORDS.glob("ts*.json")) if RECORDS.is_dir() else []:
        try:
            record = json.loads(record_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        owner = record.get("owner", {})
        if _start_ticks(int(owner.get("pid", 0))) == owner.get("started"):
            continue  # its run is alive (another test session): not ours to touch
        _delete(record.get("links", []), record.get("namespaces", []))
        record_file.unlink(missing_ok=True)


# --- the lab on these hosts: the Temporal server and the API on "server", a worker per PC ------------

BINARY = Path(sys.executable).parent / "task-scheduler"
TEMPORAL_PORT, UI_PORT, API_PORT = 7233, 8233, 8000
AUTHORIZED_IPS = "198.18.0.0/15,127.0.0.0/8"
READY_TIMEOUT_S = 60.0
SDK = "acc_vendor_sdk"  # a vendor SDK only pc-2 has

# The drivers of a PC, written to disk and imported by its worker: a node sleeps (`args["sleep"][node]`,
# else its `sleep_s` property), stops when asked to abort (unless listed in `args["uninterruptible"]`,
# as a robot's move that cannot be stopped halfway), and logs each start and end, one line each:
# "<event> <task id> <node id> <host> <network namespace inode> <pid> <unix time>".
PC_NODES = '''
"""Nodes of {host}: sleep, and log every start and end with the host and namespace they ran on."""

import os
import time

{sdk_import}
from task_scheduler import BaseNode, StepResult

HOST = os.environ["LAB_HOST"]
NETNS = os.stat("/proc/self/ns/net").st_ino


class {cls}(BaseNode):
    def _execute(self, src, dst, task_id, args=None):
        args = args or {{}}
        seconds = float(args.get("sleep", {{}}).get(self.id, self.properties["sleep_s"]))
        self._log("start", task_id)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.abort_requested and self.id not in args.get("uninterruptible", []):
                self._log("aborted", task_id)
                return 1, "aborted", None
            time.sleep(0.02)
        self._log("end", task_id)
        return StepResult(status=0, message="slept on " + HOST, output={{"host": HOST, "pid": os.getpid()}})

    def _log(self, event, task_id):
        fields = [event, task_id, self.id, HOST, NETNS, os.getpid(), f"{{time.time():.3f}}"]
        with open(self.properties["log"], "a", encoding="utf-8") as log:
            log.write(" ".join(str(f) for f in fields) + "\\n")
'''


@dataclass(frozen=True)
class DriverEvent:
    event: str  # start, end, aborted
    task_id: str
    node: str
    host: str
    netns: int
    pid: int
    at: float


@dataclass(frozen=True)
class NodeUse:
    """One run of a driver, from its own log: `end` is None while it runs, or if it was killed."""

    task_id: str
    node: str
    host: str
    netns: int
    pid: int
    start: float
    end: float | None


@dataclass
class LabNetwork:
    """A lab of several PCs on a Lan: its configuration on disk, and its processes in their hosts."""

    lan: Lan
    folder: Path
    nodes: dict[str, str]  # node id: the PC (worker name) it is wired to
    workflows: dict[str, list[str]]
    node_fields: dict[str, object] = field(default_factory=dict)
    secret: str = field(default_factory=lambda: secrets.token_hex(32))
    # The current process of each part: "server", "api", "workflow-worker", and each PC's worker.
    processes: dict[str, HostProcess] = field(default_factory=dict)

    @property
    def server(self) -> Host:
        return self.lan.hosts["server"]

    @property
    def temporal_address(self) -> str:
        return f"{self.server.address}:{TEMPORAL_PORT}"

    @property
    def api_url(self) -> str:
        return f"http://{self.server.address}:{API_PORT}"

    @property
    def config(self) -> Path:
        return self.folder / "lab"

    @property
    def drivers_log(self) -> Path:
        return self.folder / "drivers.log"

    @property
    def sdk_folder(self) -> Path:
        return self.folder / "pc2-sdk"

    # The configuration ---------------------------------------------------------------------------

    def write_config(self) -> None:
        """nodes.json, workflows.json, a driver module per PC; pc-2's imports the SDK only pc-2 has."""
        self.config.mkdir(parents=True, exist_ok=True)
        (self.sdk_folder / SDK).mkdir(parents=True, exist_ok=True)
        (self.sdk_folder / SDK / "__init__.py").write_text('VERSION = "1.0"\n', encoding="utf-8")
        for pc in sorted(set(self.nodes.values())):
            sdk_import = f"import {SDK}  # noqa: F401" if pc == "pc-2" else ""
            text = PC_NODES.format(host=pc, cls=self.node_type(pc), sdk_import=sdk_import)
            (self.config / self.module(pc)).write_text(text, encoding="utf-8")
        nodes = [self._node(node_id, pc) for node_id, pc in self.nodes.items()]
        workflows = [{"name": name, "steps": steps} for name, steps in self.workflows.items()]
        self._write_json("nodes.json", {"nodes": nodes})
        self._write_json("workflows.json", {"workflows": workflows})

    def _node(self, node_id: str, pc: str) -> dict[str, object]:
        return {
            "id": node_id,
            "name": f"{node_id} on {pc}",
            "type": self.node_type(pc),
            "worker": pc,
            "module": self.module(pc),  # the API and the other PC import none of it
            **self.node_fields,
            "properties": {"log": str(self.drivers_log), "sleep_s": 0.3},
        }

    def _write_json(self, name: str, data: object) -> None:
        (self.config / name).write_text(json.dumps(data, indent=2), encoding="utf-8")

    @staticmethod
    def module(pc: str) -> str:
        return f"{pc.replace('-', '')}_nodes.py"

    @staticmethod
    def node_type(pc: str) -> str:
        return f"{pc.replace('-', '').capitalize()}Sleeper"

    def config_arguments(self) -> list[str]:
        return ["-n", str(self.config / "nodes.json"), "-w", str(self.config / "workflows.json")]

    # The processes -------------------------------------------------------------------------------

    def environment(self, host: str, **extra: str) -> dict[str, str]:
        """A clean environment (no setting of the developer's, no proxy), the host's name for drivers."""
        dropped = ("TASK_SCHEDULER_", "TEMPORAL_", "PYTHONPATH", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
        kept = {k: v for k, v in os.environ.items() if not k.upper().startswith(dropped)}
        return {**kept, "LAB_HOST": host, **extra}

    def start_server(self) -> HostProcess:
        """`task-scheduler server` on the server host: bound to every address, its state in a folder."""
        command = [str(BINARY), "server", "--ip", "0.0.0.0", "--port", str(TEMPORAL_PORT)]
        command += ["--ui-port", str(UI_PORT), "--state-dir", str(self.folder / "server-state")]
        server = self._run("server", "server", command, self.environment("server"))
        # Ready once it tells the address for the other PCs: this host's address on the LAN.
        banner = f"TEMPORAL_ADDRESS={self.temporal_address}"
        wait_until(lambda: self._says(server, banner), f"the server to print {banner}", READY_TIMEOUT_S)
        return server

    @staticmethod
    def _says(process: HostProcess, text: str) -> bool:
        process.check_running()
        return text in process.output(lines=1000)

    def start_api(self) -> HostProcess:
        """`task-scheduler api` on the server host, on every address, for the lab's configuration."""
        env = self.environment(
            "server",
            TASK_SCHEDULER_SECRET=self.secret,
            TASK_SCHEDULER_AUTHORIZED_IPS=AUTHORIZED_IPS,
            TEMPORAL_ADDRESS=self.temporal_address,
        )
        command = [str(BINARY), "api", *self.config_arguments(), "--host", "0.0.0.0", "--port", str(API_PORT)]
        return self._run("server", "api", command, env)

    def start_workflow_worker(self) -> HostProcess:
        """The worker of the workflow queue (tasks, ledgers) on the server host: it hosts no node."""
        command = [str(BINARY), "worker", *self.config_arguments(), "--workflows-only"]
        command += ["--address", self.temporal_address]
        return self._run("server", "workflow-worker", command, self.environment("server"))

    def start_pc(self, pc: str) -> HostProcess:
        """`task-scheduler worker --name PC` on the PC's host; pc-2 alone has the vendor SDK."""
        command = [str(BINARY), "worker", *self.config_arguments(), "--name", pc, "--no-workflows"]
        command += ["--address", self.temporal_address]
        return self._run(pc, pc, command, self.pc_environment(pc))

    def _run(self, host: str, part: str, command: list[str], env: dict[str, str]) -> HostProcess:
        """Start a part of the lab; a worker started again logs to a new file (`pc-2-worker-2.log`)."""
        if part in self.nodes.values():
            runs = sum(p.name.startswith(f"{part}-worker") for p in self.lan.processes)
            name = f"{part}-worker-{runs + 1}"
        else:
            name = part
        self.processes[part] = self.lan.run(host, name, command, env, self.folder)
        return self.processes[part]

    def pc_environment(self, pc: str) -> dict[str, str]:
        extra = {"PYTHONPATH": str(self.sdk_folder)} if pc == "pc-2" else {}
        return self.environment(pc, **extra)

    def can_import(self, pc: str, module: str) -> bool:
        """Whether Python on the PC, as its worker runs, finds `module`."""
        command = [sys.executable, "-c", f"import {module}"]
        check = self.lan.run(pc, f"{pc}-import-{module}", command, self.pc_environment(pc), self.folder)
        return check.process.wait(timeout=30) == 0

    def start(self) -> None:
        """The whole lab: server, API, the workflow worker, a worker per PC; ready when every node is."""
        self.write_config()
        self.start_server()
        self.start_api()
        self.start_workflow_worker()
        for pc in sorted(set(self.nodes.values())):
            self.start_pc(pc)
        self.wait_ready(sorted(self.nodes))

    def stop(self) -> None:
        """Stop every process of the lab by its pid (SIGTERM, then SIGKILL)."""
        for process in reversed(self.lan.processes):
            process.terminate(grace_s=10.0)

    # Readiness and the API -----------------------------------------------------------------------

    def http(self, role: Role = Role.operator) -> httpx.Client:
        token = create_token(self.secret, "multi-pc-test", role, 3600)
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.Client(base_url=self.api_url, headers=headers, timeout=30, trust_env=False)

    def wait_ready(self, node_ids: Sequence[str], timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until the API answers, a worker polls the workflow queue, and each node is hosted and
        AVAILABLE; a process of the lab that exited fails the wait with its output."""
        with self.http() as http:
            wait_until(
                lambda: self._ready(http, node_ids), f"the lab to be ready ({', '.join(node_ids)})", timeout_s
            )

    def _ready(self, http: httpx.Client, node_ids: Sequence[str]) -> bool:
        self.check_running()
        try:
            health = http.get("/health")
            nodes = {n["id"]: n for n in http.get("/nodes").json()} if health.status_code == 200 else {}
        except httpx.HTTPError:
            return False
        if not health.json().get("workflow_worker"):
            return False
        return all(nodes.get(n, {}).get("hosted") and nodes[n].get("state") == "AVAILABLE" for n in node_ids)

    def check_running(self) -> None:
        for process in self.processes.values():
            process.check_running()

    # The drivers' own log ------------------------------------------------------------------------

    def events(self) -> list[DriverEvent]:
        if not self.drivers_log.exists():
            return []
        rows = [line.split() for line in self.drivers_log.read_text(encoding="utf-8").splitlines() if line]
        return [DriverEvent(e, t, n, h, int(ns), int(p), float(at)) for e, t, n, h, ns, p, at in rows]

    def uses(self) -> list[NodeUse]:
        """Every driver run, in the order they started; each start paired with the next end (or abort)
        of its task, node and process."""
        uses: list[NodeUse] = []
        running: dict[tuple[str, str, int], int] = {}
        for e in self.events():
            key = (e.task_id, e.node, e.pid)
            if e.event == "start":
                running[key] = len(uses)
                uses.append(NodeUse(e.task_id, e.node, e.host, e.netns, e.pid, e.at, None))
            elif key in running:
                index = running.pop(key)
                uses[index] = dataclasses.replace(uses[index], end=e.at)
        return uses
