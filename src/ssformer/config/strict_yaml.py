"""YAML that refuses a key written twice in one mapping (PyYAML keeps the last in silence).

A second ``TRAIN:`` block would otherwise replace the whole first one, and a repeated ``LR:``
take the last value; :func:`load_strict` names the key and both line numbers instead.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["DuplicateKeyError", "load_strict"]


class DuplicateKeyError(yaml.YAMLError):
    """A mapping holds one key twice; ``key``, ``first_line`` and ``second_line`` (1-based)."""

    def __init__(self, key: object, first_line: int, second_line: int, path: str) -> None:
        self.key, self.first_line, self.second_line = key, first_line, second_line
        where = f"in {path} " if path else "at the top level "
        super().__init__(
            f"the key {key!r} is written twice {where}(lines {first_line} and {second_line}); "
            "YAML would keep only the second and drop the first in silence: keep one of them"
        )


class _StrictLoader(yaml.SafeLoader):
    """A safe loader whose mappings refuse duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        paths: dict[int, str] = self.__dict__.setdefault("_section_paths", {})
        path = paths.get(id(node), "")
        seen: dict[object, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise DuplicateKeyError(key, seen[key], line, path)
            seen[key] = line
            if isinstance(value_node, yaml.MappingNode):  # named in its own duplicates
                paths[id(value_node)] = f"{path}.{key}" if path else str(key)
        return super().construct_mapping(node, deep=deep)


def load_strict(text: str) -> Any:
    """``yaml.safe_load`` that raises :class:`DuplicateKeyError` for a key written twice."""
    return yaml.load(text, Loader=_StrictLoader)
