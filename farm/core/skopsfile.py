"""The types a ``.skops`` file holds, read from its schema without skops (or scikit-learn) on the
client: a submitter learns at once that a file holds a type the farm will not load.

skops writes ``schema.json`` as nested objects, each naming its ``__module__`` and ``__class__``;
the worker loads with ``skops.io.load(trusted=...)``, which makes the same check authoritatively.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from farm.core.errors import CorruptModelError


def untrusted_types(path: Path, trusted_modules: tuple[str, ...]) -> list[str]:
    """``module.Class`` of every type in the file outside ``trusted_modules``, sorted."""
    try:
        with zipfile.ZipFile(path) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise CorruptModelError(f"{path}: not a valid .skops file ({exc})") from exc
    return sorted({name for name in _types(schema) if not is_trusted(name, trusted_modules)})


def is_trusted(type_name: str, trusted_modules: tuple[str, ...]) -> bool:
    root = type_name.split(".", 1)[0]
    return root in trusted_modules or type_name.startswith("builtins.")


def _types(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        module, cls = node.get("__module__"), node.get("__class__")
        if isinstance(module, str) and isinstance(cls, str):
            yield f"{module}.{cls}"
        for value in node.values():
            yield from _types(value)
    elif isinstance(node, list):
        for value in node:
            yield from _types(value)
