"""`token create` and `token revoke-all`: the API's bearer tokens, signed with the lab's secret."""

from __future__ import annotations

import argparse
import math
import sys
import time
from datetime import UTC, datetime

from ..engine.errors import TaskSchedulerError, TokenLifetimeError
from ..settings import DAY_S, Settings
from .options import dev_state, read_file


def cmd_token_create(args: argparse.Namespace) -> int:
    from ..api.security import Role, create_token

    settings = Settings()
    secret = settings.secret
    found = dev_state(args)
    value = secret.get_secret_value() if secret else read_file(found.file("secret"))
    if not value:
        raise TaskSchedulerError(
            "no secret to sign tokens with: set TASK_SCHEDULER_SECRET (the API's), or run `task-scheduler "
            f"dev` once (looked in {found.where_looked()})"
        )
    print(create_token(value, args.name, Role[args.role], token_ttl_s(settings, args.role, args.ttl_days)))
    return 0


def token_ttl_s(settings: Settings, role: str, ttl_days: float | None) -> float:
    """The role's lifetime, or fewer days if asked: the API refuses a token older than its role's."""
    lifetime_s = settings.token_lifetime_s(role)
    if ttl_days is None:
        return lifetime_s
    if ttl_days <= 0 or ttl_days * DAY_S > lifetime_s:
        raise TokenLifetimeError(
            f"--ttl-days {ttl_days:g}: {role} tokens live at most {lifetime_s / DAY_S:g} day(s) "
            f"(TASK_SCHEDULER_TOKEN_TTL_S_{role.upper()}, in seconds); ask for fewer days, or raise "
            "that setting where the API runs"
        )
    return ttl_days * DAY_S


def cmd_token_revoke_all(args: argparse.Namespace) -> int:
    """Print the setting that revokes every token issued until now (the secret stays as it is)."""
    # The next whole second: a token issued in this very second is revoked too.
    moment = datetime.fromtimestamp(math.floor(time.time()) + 1, UTC)
    print(f"TASK_SCHEDULER_TOKENS_VALID_AFTER={moment.strftime('%Y-%m-%dT%H:%M:%SZ')}")
    print(
        "Set it where the API runs (its environment or .env) and restart the API: every token issued "
        'before then is refused (401 "token revoked"). Then give new ones: `task-scheduler token create`.',
        file=sys.stderr,
    )
    return 0


def add_token_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    token = commands.add_parser("token", help="make and revoke API tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    create = token_commands.add_parser("create", help="print a token for NAME with a role")
    create.add_argument("name")
    create.add_argument("--role", choices=["viewer", "operator", "admin"], default="viewer")
    create.add_argument(
        "--ttl-days", type=float, help="fewer days than the role's lifetime (TASK_SCHEDULER_TOKEN_TTL_S_*)"
    )
    create.add_argument("--state-dir", help=argparse.SUPPRESS)
    create.set_defaults(handler=cmd_token_create)
    revoke = token_commands.add_parser(
        "revoke-all", help="print the TASK_SCHEDULER_TOKENS_VALID_AFTER that revokes every token until now"
    )
    revoke.set_defaults(handler=cmd_token_revoke_all)
