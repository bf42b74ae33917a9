"""One settings object, read from the environment (`TASK_SCHEDULER_*`, and Temporal's own `TEMPORAL_*`)
and from a `.env` file, as the seed read its `.env`."""

from __future__ import annotations

from datetime import UTC, datetime
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from temporalio.client import Client, TLSConfig
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime

from .engine.contracts import DEFAULT_TASK_QUEUE
from .engine.errors import TemporalUnreachableError

DAY_S = 24 * 3600.0
Networks = Annotated[list[IPv4Network | IPv6Network], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TASK_SCHEDULER_", env_file=".env", extra="ignore")

    temporal_address: str = Field(
        default="localhost:7233",
        validation_alias=AliasChoices("TEMPORAL_ADDRESS", "TASK_SCHEDULER_TEMPORAL_ADDRESS"),
    )
    temporal_namespace: str = Field(
        default="default",
        validation_alias=AliasChoices("TEMPORAL_NAMESPACE", "TASK_SCHEDULER_TEMPORAL_NAMESPACE"),
    )
    temporal_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("TEMPORAL_API_KEY", "TASK_SCHEDULER_TEMPORAL_API_KEY")
    )
    temporal_tls: bool = Field(
        default=False, validation_alias=AliasChoices("TEMPORAL_TLS", "TASK_SCHEDULER_TEMPORAL_TLS")
    )
    temporal_tls_client_cert_path: Path | None = Field(
        default=None, validation_alias=AliasChoices("TEMPORAL_TLS_CLIENT_CERT_PATH")
    )
    temporal_tls_client_key_path: Path | None = Field(
        default=None, validation_alias=AliasChoices("TEMPORAL_TLS_CLIENT_KEY_PATH")
    )
    temporal_tls_server_ca_cert_path: Path | None = Field(
        default=None, validation_alias=AliasChoices("TEMPORAL_TLS_SERVER_CA_CERT_PATH")
    )
    task_queue: str = DEFAULT_TASK_QUEUE
    config_dir: Path = Path("examples/demo-lab")
    nodes_file: Path | None = None
    workflows_file: Path | None = None
    node_modules: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # The API.
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    secret: SecretStr | None = None
    authorized_ips: Networks = Field(
        default_factory=lambda: [ip_network("127.0.0.0/8"), ip_network("::1/128")]
    )
    # The reverse proxies whose X-Forwarded-For is believed (the caller's address is then the one the
    # proxy forwards). Empty: no forwarded header is believed, every caller is the address it dials from.
    trusted_proxies: Networks = Field(default_factory=list)
    # How long a token of each role lives: a token older than its role's lifetime is refused whatever
    # expiry it carries, so lowering one shortens the tokens already given.
    token_ttl_s_viewer: float = Field(default=180 * DAY_S, gt=0)
    token_ttl_s_operator: float = Field(default=90 * DAY_S, gt=0)
    token_ttl_s_admin: float = Field(default=30 * DAY_S, gt=0)
    # Every token issued before this moment is refused (ISO 8601, UTC if it names no offset, or unix
    # seconds): `task-scheduler token revoke-all` prints the value for now.
    tokens_valid_after: datetime | None = None
    temporal_ui_url: str | None = None
    rpc_timeout_s: float = 10.0
    # The role of the tokens `GET /token/{identifier}` gives callers on the API's own machine: the seed's
    # clients (its Postman collection, lab scripts) fetch one there and start, pause, continue, restart
    # and reload with it, which needs an operator.
    local_token_role: Literal["viewer", "operator", "admin"] = "operator"
    # A GLAS project's `BaseScheduler.run()`: where it keeps its state, and the ports of the Temporal dev
    # server it starts (unless TEMPORAL_ADDRESS names a server of the lab's own).
    state_dir: Path = Path(".task-scheduler")
    temporal_port: int = Field(default=7233, gt=0, lt=65536)
    temporal_ui_port: int = Field(default=8233, gt=0, lt=65536)

    @field_validator("authorized_ips", "trusted_proxies", mode="before")
    @classmethod
    def _split_networks(cls, value: Any) -> Any:
        """`TASK_SCHEDULER_AUTHORIZED_IPS=10.0.0.0/8,192.168.1.20` (CIDRs or addresses, comma-separated)."""
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return [ip_network(v, strict=False) if isinstance(v, str) else v for v in value]

    @field_validator("tokens_valid_after")
    @classmethod
    def _utc_if_naive(cls, value: datetime | None) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    @field_validator("node_modules", mode="before")
    @classmethod
    def _split_modules(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def token_lifetime_s(self, role: str) -> float:
        """The lifetime of a token of `role` (viewer, operator, admin)."""
        return float(getattr(self, f"token_ttl_s_{role}"))

    def tls(self) -> TLSConfig | bool:
        paths = (
            self.temporal_tls_client_cert_path,
            self.temporal_tls_client_key_path,
            self.temporal_tls_server_ca_cert_path,
        )
        if not any(paths):
            return self.temporal_tls or bool(self.temporal_api_key)
        cert, key, ca = (p.read_bytes() if p else None for p in paths)
        return TLSConfig(client_cert=cert, client_private_key=key, server_root_ca_cert=ca)


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    """A Temporal client with the pydantic data converter (every client of ours uses it); `runtime`: the
    SDK runtime (a worker's serves the SDK's metrics), the default one if None. A server that cannot be
    reached is a TemporalUnreachableError that says where it was dialled and how to change that."""
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            api_key=settings.temporal_api_key,
            tls=settings.tls(),
            data_converter=pydantic_data_converter,
            runtime=runtime,
        )
    except RuntimeError as exc:  # the SDK's bridge: "Failed client connect: ..."
        if "connect" not in str(exc):
            raise
        raise TemporalUnreachableError(
            f"cannot reach Temporal at {settings.temporal_address} ({_why(exc)}): start its server "
            "(`task-scheduler server` on the lab's server PC, or `make run` for everything on one PC), or "
            "dial another with --address or TEMPORAL_ADDRESS"
        ) from exc


def _why(exc: RuntimeError) -> str:
    text = str(exc)
    for known in ("Connection refused", "timed out", "No route to host", "dns error", "certificate"):
        if known.lower() in text.lower():
            return known.lower()
    return text
