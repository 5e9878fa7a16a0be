"""Reading a config file outside Snakemake: YAML, then the same JSON schema the workflow
validates with (``workflow/schemas/config.schema.yaml``), defaults filled in as Snakemake's
``validate`` fills them. Errors name the key path, the bad value and what is accepted."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from scgraphbench.errors import ScgbError

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def schema_path() -> Path:
    path = Path(os.environ.get("SCGB_CONFIG_SCHEMA", SCHEMA))
    if not path.is_file():
        raise ScgbError("the config schema is not where the workflow keeps it", path=str(path),
                        fix="run from a checkout of scgraphbench (pip install -e .), or set "
                            "SCGB_CONFIG_SCHEMA to workflow/schemas/config.schema.yaml")
    return path


def schema_error(error: Any) -> ScgbError:
    """A jsonschema ValidationError as an ScgbError naming the key path."""
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    value = error.instance
    shown = repr(value) if not isinstance(value, dict | list) else type(value).__name__
    allowed = error.schema.get("enum") if isinstance(error.schema, dict) else None
    fix = (f"use one of {allowed}" if allowed else
           f"see the schema's description of '{where}'"
           + (f": {error.schema.get('description')}" if isinstance(error.schema, dict)
              and error.schema.get("description") else ""))
    return ScgbError(f"{error.message} (got {shown})", field=where, fix=fix)


def validate_config(config: Any) -> dict[str, Any]:
    """Schema-check a config dict (defaults filled in place, as Snakemake's validate)."""
    import jsonschema
    import yaml

    schema = yaml.safe_load(schema_path().read_text())
    if not isinstance(config, dict):
        raise ScgbError(f"the config is a {type(config).__name__}, not a mapping",
                        field="(top level)", fix="write the config as YAML key: value pairs")
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = _with_defaults(validator_cls)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise schema_error(errors[0])
    return config


def _with_defaults(validator_cls: Any) -> Any:
    import jsonschema

    base = validator_cls.VALIDATORS["properties"]

    def properties(validator: Any, props: dict, instance: Any, schema: dict) -> Any:
        if isinstance(instance, dict):
            for key, sub in props.items():
                if isinstance(sub, dict) and "default" in sub:
                    instance.setdefault(key, sub["default"])
        yield from base(validator, props, instance, schema)

    return jsonschema.validators.extend(validator_cls, {"properties": properties})


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    import yaml

    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ScgbError(f"cannot read the config ({e.strerror})", path=str(path),
                        fix="give the path of a YAML config file") from None
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ScgbError(f"not valid YAML: {e}", path=str(path),
                        fix="fix the YAML syntax at the line shown") from None
    try:
        return validate_config(config)
    except ScgbError as e:
        raise e.at(str(path)) from None
