"""Config validation with messages that name the key and the bad value.

`snakemake --config key=value` hands over strings for list items and nested values
(`seeds=[1,2,3]` arrives as ['1', '2', '3']), so values are first coerced to the types the
schema asks for, then validated. Nothing here fills in defaults: config.yaml holds every one.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml


class ConfigError(ValueError):
    """An invalid workflow config; the message lists every bad key."""


def load_schema(schema_path: str | Path) -> dict:
    return yaml.safe_load(Path(schema_path).read_text(encoding="utf-8"))


def schema_enum(schema_path: str | Path, key: str) -> list[str]:
    """The allowed items of a top-level list setting (`classifiers`): the one list of them."""
    return list(load_schema(schema_path)["properties"][key]["items"]["enum"])


def key_path(path: Any) -> str:
    parts: list[str] = []
    for p in path:
        parts.append(f"[{p}]" if isinstance(p, int) else ("." if parts else "") + str(p))
    return "".join(parts) or "(top level)"


# --------------------------------------------------------------------------- coercion
_TRUE = {"true", "True", "TRUE", "yes", "on"}
_FALSE = {"false", "False", "FALSE", "no", "off"}
_NULL = {"null", "Null", "NULL", "None", "none", "~"}


def _types(schema: dict) -> list[str]:
    t = schema.get("type", [])
    types = [t] if isinstance(t, str) else list(t)
    for alternative in schema.get("anyOf", []) + schema.get("oneOf", []):
        types += [x for x in _types(alternative) if x not in types]
    return types


def _resolve(schema: dict, root: dict) -> dict:
    """`schema` with its `$ref` followed, through every reference in a chain (a per-benchmark key
    refers to generation's, which may refer to a shared definition)."""
    ref = schema.get("$ref")
    if ref and ref.startswith("#/"):
        node: Any = root
        for part in ref[2:].split("/"):
            node = node[part]
        return _resolve({**node, **{k: v for k, v in schema.items() if k != "$ref"}}, root)
    return schema


def _coerce_scalar(value: Any, types: list[str]) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if "null" in types and text in _NULL:
            return None
        if "boolean" in types and text in _TRUE | _FALSE:
            return text in _TRUE
        if "integer" in types:
            try:
                return int(text)
            except ValueError:
                pass
        if "number" in types:
            try:
                return float(text)
            except ValueError:
                pass
        if "array" in types or "object" in types:
            try:  # a whole list or mapping written as text: "[1, 2]"
                parsed = yaml.safe_load(text)
            except yaml.YAMLError:
                return value
            if isinstance(parsed, (list, dict)):
                return parsed
        return value
    # Snakemake turns `--config name=2024` into the integer 2024; a string key wants text.
    if isinstance(value, (int, float)) and not isinstance(value, bool) and types == ["string"]:
        return str(value)
    return value


def coerce(config: Any, schema: dict, root: dict | None = None) -> Any:
    """A copy of `config` with string values converted to the schema's scalar types."""
    root = root if root is not None else schema
    schema = _resolve(schema, root)
    types = _types(schema)
    value = _coerce_scalar(config, types)
    if isinstance(value, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        out = {}
        for key, item in value.items():
            sub = props.get(key, extra if isinstance(extra, dict) else None)
            out[key] = coerce(item, sub, root) if sub else item
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [coerce(item, schema["items"], root) for item in value]
    return value


# --------------------------------------------------------------------------- validation
def config_errors(config: dict, schema: dict | str | Path) -> list[str]:
    if not isinstance(schema, dict):
        schema = load_schema(schema)
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


def check_config(config: dict, schema: dict | str | Path) -> dict:
    """Coerce, validate and return the config; raise ConfigError naming every bad key."""
    if not isinstance(schema, dict):
        schema = load_schema(schema)
    coerced = coerce(copy.deepcopy(config), schema)
    errors = config_errors(coerced, schema)
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))
    return coerced


def load_config(path: str | Path, *overlays: str | Path | dict) -> dict:
    """config.yaml with overlay files or dicts merged in, as Snakemake merges --configfile."""
    config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    for overlay in overlays:
        data = overlay if isinstance(overlay, dict) else yaml.safe_load(Path(overlay).read_text(encoding="utf-8"))
        merge(config, data or {})
    return config


def merge(base: dict, update: dict) -> dict:
    """Recursive update, the way Snakemake merges config files and --config values."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


# --------------------------------------------------------------------------- the reference page
def config_reference(config_yaml: str | Path) -> list[tuple[str, str, str]]:
    """(key path, default, meaning) for every key of the default config, in file order, read from
    its lines: `key: value  # meaning`, nesting by indentation. docs/configuration.md is made from
    this (scripts/config_docs.py), and a test checks it covers every key of the schema."""
    rows: list[tuple[str, str, str]] = []
    stack: list[tuple[int, str]] = []
    for line in Path(config_yaml).read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#") or ":" not in line:
            continue
        indent = len(line) - len(line.lstrip())
        body, _, comment = line.strip().partition("  # ")
        key, _, value = body.partition(":")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = ".".join([k for _, k in stack] + [key.strip()])
        rows.append((path, value.strip(), comment.strip()))
        if not value.strip():
            stack.append((indent, key.strip()))
    return rows


def schema_keys(schema: dict, prefix: str = "", root: dict | None = None) -> list[str]:
    """Every key path the schema names under its top-level object properties (not free-form maps,
    and of an override block, marked `x-overrides`, only the keys it requires: any other is one of
    the overridden block's keys, documented there)."""
    root = root if root is not None else schema
    node = _resolve(schema, root)
    if node.get("x-overrides"):
        return [f"{prefix}{name}" for name in node.get("required", [])]
    keys = []
    for name, sub in node.get("properties", {}).items():
        path = f"{prefix}{name}"
        keys.append(path)
        keys += schema_keys(sub, path + ".", root)
    return keys
