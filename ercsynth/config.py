"""Config validation with messages that name the key and the bad value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import yaml


class ConfigError(ValueError):
    """An invalid workflow config; the message lists every bad key."""


def key_path(path: Any) -> str:
    parts: list[str] = []
    for p in path:
        parts.append(f"[{p}]" if isinstance(p, int) else ("." if parts else "") + str(p))
    return "".join(parts) or "(top level)"


def config_errors(config: dict, schema_path: str | Path) -> list[str]:
    schema = yaml.safe_load(Path(schema_path).read_text())
    validator = jsonschema.Draft202012Validator(schema)
    messages = []
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        where = key_path(err.absolute_path)
        if err.validator == "required":
            messages.append(f"config key '{where}': {err.message}")
        elif err.validator == "additionalProperties":
            messages.append(f"config key '{where}': {err.message} (unknown key; check the spelling)")
        else:
            messages.append(f"config key '{where}': bad value {err.instance!r}: {err.message}")
    return messages


def check_config(config: dict, schema_path: str | Path) -> None:
    errors = config_errors(config, schema_path)
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))
