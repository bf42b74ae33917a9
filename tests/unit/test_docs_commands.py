"""Every `task-scheduler` command that README.md and docs/ show exists, with the options they show:
its `--help` answers, and each option named after it is one of its own. A renamed or removed command
(`task-scheduler node show` once) fails here, not in a newcomer's terminal."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
from pathlib import Path

import pytest

from task_scheduler.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "examples").glob("*/README.md")),
]
# What follows `task-scheduler` on the same line, up to the end of the code or the sentence.
SHOWN = re.compile(r"task-scheduler((?:[ \t]+[^\s`|#)]+)+)")


def shown_commands() -> dict[tuple[str, ...], set[str]]:
    """Each command path the pages show (`("task", "start")`), and the options shown after it."""
    found: dict[tuple[str, ...], set[str]] = {}
    for page in PAGES:
        for line in page.read_text(encoding="utf-8").splitlines():
            for match in SHOWN.finditer(line):
                words = match.group(1).split()
                path = command_path(words)
                if path:
                    options = {
                        w.split("=")[0]
                        for w in words
                        if w.startswith("-") and w != "-" and not w.startswith("---")
                    }
                    found.setdefault(path, set()).update(options)
    return found


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


def command_path(words: list[str]) -> tuple[str, ...]:
    """The leading words that name a command and its action; () for prose ("task-scheduler is ...")."""
    path: list[str] = []
    parser = build_parser()
    for word in words:
        choices = subcommands(parser)
        if word not in choices:
            break
        path.append(word)
        parser = choices[word]
    return tuple(path)


def parser_of(path: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = build_parser()
    for word in path:
        parser = subcommands(parser)[word]
    return parser


def test_the_pages_show_the_commands() -> None:
    shown = shown_commands()
    assert {("dev",), ("task", "start"), ("worker",), ("config", "check")} <= set(shown)


def test_no_page_shows_a_command_that_does_not_exist() -> None:
    unknown = [
        f"{page.relative_to(ROOT)}: task-scheduler{match.group(1)}"
        for page in PAGES
        for line in page.read_text(encoding="utf-8").splitlines()
        for match in SHOWN.finditer(line)
        if no_such_action(match.group(1).split())
    ]
    assert not unknown, unknown
    assert no_such_action(["node", "show", "3"])  # the check itself finds one


def no_such_action(words: list[str]) -> bool:
    """The words name a group of commands (`node`) and then a word that is none of its actions (`show`);
    a placeholder (`...`, `<id>`, `[--mode next]`) or an option is not such a word."""
    path = command_path(words)
    actions = subcommands(parser_of(path)) if path else {}
    rest = words[len(path) :]
    return bool(actions and rest and re.fullmatch(r"[a-z][a-z-]*", rest[0]) and rest[0] not in actions)


@pytest.mark.parametrize("path", sorted(shown_commands()), ids=" ".join)
def test_each_command_shown_answers_its_help_with_the_options_shown(path: tuple[str, ...]) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        build_parser().parse_args([*path, "--help"])
    assert done.value.code == 0 and "usage: task-scheduler" in out.getvalue()
    known = {option for action in parser_of(path)._actions for option in action.option_strings}
    assert shown_commands()[path] <= known, f"options shown that `{' '.join(path)}` does not take"
