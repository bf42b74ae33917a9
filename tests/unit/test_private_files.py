"""The files `task-scheduler dev` keeps its secrets in (the signing secret, the admin token) are the
owner's only from the moment they exist, whatever the umask; an older world-readable one is fixed."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from task_scheduler.devstack import dev_secret, write_private


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Umask 0: a file made without an explicit mode would be readable and writable by everyone."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_private_makes_a_file_only_its_owner_reads(tmp_path: Path, open_umask: None) -> None:
    token = tmp_path / "token"

    write_private(token, "first")

    assert (_mode(token), token.read_text()) == (0o600, "first")


def test_write_private_replaces_a_world_readable_file_by_a_private_one(
    tmp_path: Path, open_umask: None
) -> None:
    token = tmp_path / "token"
    token.write_text("old")
    token.chmod(0o644)

    write_private(token, "second")

    assert (_mode(token), token.read_text()) == (0o600, "second")
    assert [p.name for p in tmp_path.iterdir()] == ["token"]  # no temporary file left behind


def test_dev_secret_is_made_once_and_private(tmp_path: Path, open_umask: None) -> None:
    first = dev_secret(tmp_path)

    assert _mode(tmp_path / "secret") == 0o600
    assert len(first) == 64
    assert dev_secret(tmp_path) == first


def test_dev_secret_left_world_readable_by_an_older_version_is_made_private(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s" * 64 + "\n")
    secret.chmod(0o644)

    assert dev_secret(tmp_path) == "s" * 64
    assert _mode(secret) == 0o600
