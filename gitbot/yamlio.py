"""The only importer of ruamel.yaml: parsing YAML text with positions.

It must not write YAML: gitbot never re-serialises a user's document.
"""

from __future__ import annotations

from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from gitbot.errors import ManifestError


def load_with_positions(text: str, *, source: str) -> tuple[Any, dict[str, int]]:
    """Load one YAML document as plain Python data and map every JSON Pointer in it to its 1-based line.

    Used for configuration files, where an error must name the line of the field it is about.
    """
    yaml = YAML(typ="rt")
    try:
        data = yaml.load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ManifestError(f"not valid YAML: {problem}", where=f"{source}{line}") from exc
    lines: dict[str, int] = {"": 1}

    def walk(node: Any, pointer: str) -> Any:
        if isinstance(node, dict):
            out: dict[Any, Any] = {}
            for key, value in node.items():
                child = f"{pointer}/{_escape(str(key))}"
                line_col = node.lc.key(key) if hasattr(node, "lc") else None
                if line_col is not None:
                    lines[child] = int(line_col[0]) + 1
                out[str(key)] = walk(value, child)
            return out
        if isinstance(node, list):
            items = []
            for index, value in enumerate(node):
                child = f"{pointer}/{index}"
                if hasattr(node, "lc"):
                    lines[child] = int(node.lc.item(index)[0]) + 1
                items.append(walk(value, child))
            return items
        if isinstance(node, str):
            return str(node)
        return node

    return walk(data, ""), lines


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")
