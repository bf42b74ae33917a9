"""Token lifetimes per role and revocation, over real HTTP: a token older than its role's lifetime is
refused whatever its own expiry says, every token issued before TASK_SCHEDULER_TOKENS_VALID_AFTER is
refused, and the CLI's `token create` / `token revoke-all` give what the API then accepts or refuses."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import jwt
import pytest
from api_support import SECRET, MakeClient, ServeApp, bearer, wait_for

from task_scheduler.cli import main
from task_scheduler.settings import DAY_S, Settings

HOUR_S = 3600


def _token(role: str, issued_at: float, expires_at: float) -> str:
    claims = {"sub": f"old-{role}", "role": role, "iat": int(issued_at), "exp": int(expires_at)}
    return jwt.encode(claims, SECRET, algorithm="HS256")


async def _status(make_client: MakeClient, url: str, credentials: str) -> tuple[int, str]:
    response = await make_client(headers=bearer(credentials), base_url=url).get("/workflows")
    return response.status_code, response.text


async def test_token_older_than_its_roles_lifetime_is_refused_whatever_its_expiry(
    serve_app: ServeApp, api_settings: Settings, make_client: MakeClient
) -> None:
    url = await serve_app(settings=api_settings.model_copy(update={"token_ttl_s_operator": 60.0}))
    now = time.time()
    far = now + 365 * DAY_S

    operator = await make_client(headers=bearer(_token("operator", now - HOUR_S, far)), base_url=url).get(
        "/workflows"
    )
    viewer = await _status(make_client, url, _token("viewer", now - HOUR_S, far))
    young_operator = await _status(make_client, url, _token("operator", now - 1, far))

    assert operator.status_code == 401
    assert operator.headers["WWW-Authenticate"] == "Bearer"
    assert operator.json()["detail"] == (
        "the token has expired: operator tokens live at most 60 s "
        "(TASK_SCHEDULER_TOKEN_TTL_S_OPERATOR); ask an admin for a new one"
    )
    assert viewer[0] == young_operator[0] == 200


async def test_tokens_issued_before_valid_after_are_revoked(
    serve_app: ServeApp, api_settings: Settings, make_client: MakeClient
) -> None:
    now = int(time.time())
    valid_after = datetime.fromtimestamp(now - 10, UTC)
    url = await serve_app(settings=api_settings.model_copy(update={"tokens_valid_after": valid_after}))

    revoked = await make_client(headers=bearer(_token("admin", now - 60, now + HOUR_S)), base_url=url).get(
        "/config"
    )
    fresh = await _status(make_client, url, _token("admin", now - 10, now + HOUR_S))

    assert revoked.status_code == 401
    iso = valid_after.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert revoked.json()["detail"] == (
        f"token revoked: issued before {iso} (TASK_SCHEDULER_TOKENS_VALID_AFTER); ask an admin for a new one"
    )
    assert fresh[0] == 200, fresh[1]


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("1767315845", datetime(2026, 1, 2, 1, 4, 5, tzinfo=UTC)),
        ("2026-01-02T01:04:05Z", datetime(2026, 1, 2, 1, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05+02:00", datetime(2026, 1, 2, 1, 4, 5, tzinfo=UTC)),
        ("2026-01-02T01:04:05", datetime(2026, 1, 2, 1, 4, 5, tzinfo=UTC)),  # no offset: UTC
    ],
)
def test_tokens_valid_after_reads_iso_times_and_unix_seconds(
    monkeypatch: pytest.MonkeyPatch, text: str, moment: datetime
) -> None:
    monkeypatch.setenv("TASK_SCHEDULER_TOKENS_VALID_AFTER", text)

    assert Settings(_env_file=None).tokens_valid_after == moment  # type: ignore[call-arg]


async def test_tokens_given_by_the_api_live_their_roles_lifetime(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient, api_settings: Settings
) -> None:
    made = {
        role: (await admin.post("/tokens", json={"name": "robot", "role": role})).json()
        for role in ("viewer", "operator", "admin")
    }
    local = (await anonymous.get("/token/bench-pc")).json()

    for role, given in [*made.items(), ("operator", local)]:
        lifetime_s = api_settings.token_lifetime_s(role)
        claims = jwt.decode(given["token"], SECRET, algorithms=["HS256"])
        assert given["expires_in_s"] == lifetime_s
        assert claims["exp"] - claims["iat"] == int(lifetime_s)
    assert Settings().token_lifetime_s("admin") < Settings().token_lifetime_s("operator")


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    monkeypatch.setenv("TASK_SCHEDULER_SECRET", SECRET)
    code = main(list(argv))
    return code, capsys.readouterr()


def test_token_create_gives_the_roles_lifetime_and_refuses_a_longer_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TASK_SCHEDULER_TOKEN_TTL_S_OPERATOR", str(7 * DAY_S))

    code, out = _cli(monkeypatch, capsys, "token", "create", "alice", "--role", "operator")
    claims = jwt.decode(out.out.strip(), SECRET, algorithms=["HS256"])
    shorter, _ = _cli(
        monkeypatch, capsys, "token", "create", "alice", "--role", "operator", "--ttl-days", "2"
    )
    longer, refused = _cli(
        monkeypatch, capsys, "token", "create", "bob", "--role", "operator", "--ttl-days", "90"
    )

    assert (code, shorter) == (0, 0)
    assert claims["exp"] - claims["iat"] == 7 * DAY_S
    assert longer == 1
    assert refused.out == ""
    assert "operator tokens live at most 7 day(s) (TASK_SCHEDULER_TOKEN_TTL_S_OPERATOR" in refused.err


async def test_revoke_all_prints_the_setting_that_refuses_every_token_issued_until_then(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    serve_app: ServeApp,
    api_settings: Settings,
    make_client: MakeClient,
) -> None:
    _, made = _cli(monkeypatch, capsys, "token", "create", "alice", "--role", "operator")
    before = made.out.strip()

    code, out = _cli(monkeypatch, capsys, "token", "revoke-all")
    name, value = out.out.strip().split("=", 1)
    monkeypatch.setenv(name, value)
    revoking = api_settings.model_copy(update={"tokens_valid_after": Settings().tokens_valid_after})
    url = await serve_app(settings=revoking)
    valid_after = int(datetime.fromisoformat(value).timestamp())

    assert code == 0
    assert name == "TASK_SCHEDULER_TOKENS_VALID_AFTER"
    assert "restart the API" in out.err
    status, body = await _status(make_client, url, before)
    assert status == 401
    assert f"token revoked: issued before {value}" in body
    # A token made from that second on is accepted (the moment is at most a second ahead).
    await wait_for(_now_past(valid_after), "the clock to reach TASK_SCHEDULER_TOKENS_VALID_AFTER", 5)
    _, remade = _cli(monkeypatch, capsys, "token", "create", "alice", "--role", "operator")
    assert (await _status(make_client, url, remade.out.strip()))[0] == 200


def _now_past(moment: float) -> Callable[[], Awaitable[bool]]:
    async def probe() -> bool:
        return time.time() >= moment

    return probe
