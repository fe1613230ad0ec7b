"""Reading user YAML files (mappings, metric definitions) so every problem is reported with file:line.

Files are composed into nodes rather than loaded into dicts, so each value keeps its position;
problems are collected and raised together, so a user fixes a file in one pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cxlens.errors import CxlensError


class Problems:
    """Problems found in one file, each with its line; raised together as one error."""

    def __init__(self, path: Path, error: type[CxlensError], what: str):
        self.path, self.error, self.what = path, error, what
        self.items: list[str] = []

    def add(self, node: yaml.Node | None, message: str) -> None:
        where = f"{self.path}:{node.start_mark.line + 1}" if node is not None else str(self.path)
        self.items.append(f"{where}: {message}")

    def raise_if_any(self) -> None:
        if len(self.items) == 1:
            raise self.error(f"The {self.what} {self.items[0]}")
        if self.items:
            raise self.error(f"The {self.what} {self.path} has {len(self.items)} problems: " + "; ".join(self.items))


def scalar(node: yaml.Node | None) -> Any:
    """A node's plain Python value."""
    return yaml.safe_load(yaml.serialize(node)) if node is not None else None


def compose(path: Path, error: type[CxlensError], what: str) -> yaml.Node | None:
    """The file's node tree, or an error naming the file (and line, for bad YAML)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"The {what} file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"Cannot read the {what} file {path}: {exc}.") from None
    try:
        return yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise error(f"The {what} {path}{line} is not valid YAML ({getattr(exc, 'problem', exc)}).") from None
