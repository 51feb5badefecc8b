"""`RecipeMerger`: how a child recipe combines with the parent it `extends:`.

Rules: scalars override; dicts deep-merge; `transform.steps` concatenate parent-first; every
other list is replaced. `delete:` removes inherited keys (dot paths) before the child's own
keys are merged in, so a child can delete an inherited key and define it anew.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

CONCATENATED_LISTS = frozenset({"transform.steps"})


class RecipeMerger:
    """Merges parent and child recipe dicts, and applies `delete:` paths."""

    def merge(
        self, parent: dict[str, Any], child: dict[str, Any], _path: str = ""
    ) -> dict[str, Any]:
        merged = copy.deepcopy(parent)
        for key, value in child.items():
            path = f"{_path}.{key}" if _path else key
            inherited = merged.get(key)
            if isinstance(inherited, dict) and isinstance(value, dict):
                merged[key] = self.merge(inherited, value, path)
            elif (
                path in CONCATENATED_LISTS
                and isinstance(inherited, list)
                and isinstance(value, list)
            ):
                merged[key] = inherited + copy.deepcopy(value)
            else:
                merged[key] = copy.deepcopy(value)
        return merged

    def delete(self, tree: dict[str, Any], path: str) -> None:
        """Remove the value at dot `path`; `KeyError` naming the first missing part otherwise."""
        parts = path.split(".")
        node: Any = tree
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if isinstance(node, list) and part.isdigit() and int(part) < len(node):
                if last:
                    del node[int(part)]
                    return
                node = node[int(part)]
            elif isinstance(node, dict) and part in node:
                if last:
                    del node[part]
                    return
                node = node[part]
            else:
                raise KeyError(".".join(parts[: depth + 1]))


def leaf_paths(tree: Any, prefix: str = "") -> list[str]:
    """Every dot path in `tree` that leads to a value (dicts are descended, lists are leaves)."""
    if isinstance(tree, dict) and tree:
        paths: list[str] = []
        for key, value in tree.items():
            paths += leaf_paths(value, f"{prefix}.{key}" if prefix else str(key))
        return paths
    return [prefix] if prefix else []


def origin_of(origins: Mapping[str, str], key: str) -> str | None:
    """The file that defined dot path `key` (for a section, the file of its first key; else
    of its nearest parent), per `origins`."""
    part = key.split("[", 1)[0]
    if part not in origins:
        inner = next((file for path, file in origins.items() if path.startswith(f"{part}.")), None)
        if inner is not None:
            return inner
    while part:
        if part in origins:
            return origins[part]
        part = part.rsplit(".", 1)[0] if "." in part else ""
    return None
