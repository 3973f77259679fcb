"""Loading: YAML files in conf/ layered into one tree and validated as an :class:`AppConfig`.

Precedence, lowest first: ``base.yaml``, ``sources.yaml``, ``identity.yaml``, ``gold.yaml``, ``ml.yaml``,
``governance.yaml`` < ``<env>.yaml`` <
``regions/<code>.yaml`` < ``--set key=value``. Each region's settings start from
``region_defaults`` (base, then env) and are overlaid by that region's file.

Every leaf value remembers which file (or ``--set``) gave it, so a validation error names
the file and the dotted key. Secrets never live in files: the PII hashing key is read from
the environment variable named by ``pii.hash_key_env`` (:meth:`AppConfig.pii_hash_key`).
"""
from __future__ import annotations

import copy
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from customer360.config.app import AppConfig
from customer360.errors import ConfigError

CONF_DIR_ENV = "C360_CONF_DIR"
DOTTED_KEY_MAPS = (("spark", "conf"), ("lakehouse", "storage_options"))
SET_SOURCE = "--set"
#: files every environment loads first, in this order
SHARED_FILES = ("base", "sources", "identity", "gold", "ml", "governance")


class _Layered:
    """A nested dict plus, for every leaf, the name of the layer that set it."""

    def __init__(self) -> None:
        self.tree: dict[str, Any] = {}
        self.origin: dict[tuple[str, ...], str] = {}

    def overlay(self, data: Mapping[str, Any], source: str, prefix: tuple[str, ...] = ()) -> None:
        target = self.tree
        for key in prefix:
            target = target.setdefault(key, {})
        self._merge(target, data, source, prefix)

    def _merge(self, target: dict[str, Any], data: Mapping[str, Any], source: str, path: tuple[str, ...]) -> None:
        for key, value in data.items():
            key = str(key)
            here = (*path, key)
            if isinstance(value, Mapping) and value and isinstance(target.get(key), dict):
                self._merge(target[key], value, source, here)
            elif isinstance(value, Mapping) and value:
                target[key] = {}
                self._drop_origin(here)
                self._merge(target[key], value, source, here)
            else:
                target[key] = copy.deepcopy(value)
                self._drop_origin(here)
                self.origin[here] = source

    def _drop_origin(self, path: tuple[str, ...]) -> None:
        for known in [p for p in self.origin if p[: len(path)] == path]:
            del self.origin[known]

    def source_of(self, path: Sequence[str | int]) -> str | None:
        keys = tuple(str(p) for p in path)
        while keys:
            if keys in self.origin:
                return self.origin[keys]
            below = [src for p, src in self.origin.items() if p[: len(keys)] == keys]
            if below:
                return below[-1]
            keys = keys[:-1]
        return None


def default_conf_dir() -> Any:
    """``$C360_CONF_DIR``, else ``./conf``, else the copy a wheel carries, else the checkout's."""
    env_dir = os.environ.get(CONF_DIR_ENV)
    if env_dir:
        return Path(env_dir)
    local = Path.cwd() / "conf"
    if (local / "base.yaml").is_file():
        return local
    try:
        packaged = resources.files("customer360.conf")
    except ModuleNotFoundError:  # an editable install maps lib/ only
        # lib/customer360/config/loading.py: three folders up is the checkout, which holds conf/
        return Path(__file__).resolve().parents[3] / "conf"
    # a folder of an installed wheel, or a Traversable inside a zip (spark-submit --py-files)
    return Path(str(packaged)) if Path(str(packaged)).is_dir() else packaged


def _yaml_files(folder) -> list:
    """The ``*.yaml`` files of a folder (a Path, or a Traversable inside a zip)."""
    if not folder.is_dir():
        return []
    return [p for p in folder.iterdir() if p.name.endswith(".yaml") and p.is_file()]


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader whose booleans are only true/false: 'NO' (Norway) or 'on' stay strings."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass


def _read_yaml(path: Path, label: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"{label}: file not found") from exc
    try:
        data = _load_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: top level must be a mapping, got {type(data).__name__}")
    return data


#: the only governance keys ``--set`` may change: where the Unity Catalog statements point, never
#: what a role may read or see (a user choosing ``--set governance.roles.finance.pii=clear``)
SETTABLE_GOVERNANCE_NAMES = ("unity_catalog",)
SETTABLE_GOVERNANCE = tuple((name,) for name in SETTABLE_GOVERNANCE_NAMES)


def parse_overrides(items: Iterable[str]) -> list[tuple[tuple[str, ...], Any]]:
    """Parse ``key.path=value`` strings; values are YAML scalars or flow collections."""
    parsed = []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z0-9_*-]+(\.[A-Za-z0-9_*-]+)*", key):
            raise ConfigError(f"--set {item!r}: expected key.path=value, e.g. spark.shuffle_partitions=4")
        try:
            value = _load_yaml(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: value is not valid YAML: {exc}") from exc
        parts = tuple(key.split("."))
        # maps whose keys themselves contain dots: spark.conf.<spark key>, lakehouse.storage_options.<key>
        for prefix in DOTTED_KEY_MAPS:
            if parts[: len(prefix)] == prefix and len(parts) > len(prefix):
                parts = (*prefix, ".".join(parts[len(prefix) :]))
        parsed.append((parts, value))
    return parsed


def _nest(path: Sequence[str], value: Any) -> dict[str, Any]:
    for key in reversed(path):
        value = {key: value}
    return value


def load_config(
    env: str = "local",
    *,
    overrides: Iterable[str] = (),
    conf_dir: str | Path | None = None,
) -> AppConfig:
    """Load ``base`` < ``sources`` < ``<env>`` < ``regions/*`` < overrides into an :class:`AppConfig`."""
    root: Any = Path(conf_dir) if conf_dir is not None else default_conf_dir()
    if not (root / "base.yaml").is_file():
        raise ConfigError(f"{root}: no base.yaml here; pass --conf-dir or set {CONF_DIR_ENV}")
    if not re.fullmatch(r"[a-z0-9_-]+", env):
        raise ConfigError(f"environment name {env!r} must be lower-case letters, digits, '-' or '_'")
    env_file = root / f"{env}.yaml"
    if env in SHARED_FILES or not env_file.is_file():
        known = sorted(p.name[:-5] for p in _yaml_files(root) if p.name[:-5] not in SHARED_FILES)
        raise ConfigError(f"unknown environment {env!r}: no {env_file}; known: {', '.join(known)}")

    layers = _Layered()
    for path in (*(root / f"{name}.yaml" for name in SHARED_FILES), env_file):
        label = str(path)
        data = _read_yaml(path, label)
        if "regions" in data or "env" in data:
            bad = "regions" if "regions" in data else "env"
            raise ConfigError(f"{label}: key {bad!r} is not set in files (regions come from conf/regions/)")
        layers.overlay(data, label)
    layers.overlay({"env": env}, "--env")

    region_files = sorted(_yaml_files(root / "regions"), key=lambda p: p.name)
    if not region_files:
        raise ConfigError(f"{root / 'regions'}: no region files (<code>.yaml)")
    defaults = layers.tree.pop("region_defaults", {})
    default_origin = {p[1:]: src for p, src in layers.origin.items() if p[:1] == ("region_defaults",)}
    for path in region_files:
        code = path.name[:-5]
        layers.overlay({"regions": {code: copy.deepcopy(defaults)}}, "region_defaults")
        for sub, src in default_origin.items():
            layers.origin[("regions", code, *sub)] = src
        layers.overlay(_read_yaml(path, str(path)), str(path), prefix=("regions", code))

    for key_path, value in parse_overrides(overrides):
        if key_path[:1] == ("governance",) and key_path[1:2] not in SETTABLE_GOVERNANCE:
            raise ConfigError(
                f"--set {'.'.join(key_path)}: the access policy (roles, PII columns, SQL bounds) comes from the "
                f"configuration files only; --set may change only {', '.join(f'governance.{n}.*' for n in SETTABLE_GOVERNANCE_NAMES)}"
            )
        if key_path[:1] == ("regions",) and len(key_path) > 2 and key_path[1] == "*":
            for code in layers.tree.get("regions", {}):
                layers.overlay(_nest(key_path[2:], value), SET_SOURCE, prefix=("regions", code))
        elif key_path[:1] == ("region_defaults",):
            raise ConfigError(
                f"--set {'.'.join(key_path)}: set region values as regions.<code>.<key> or regions.*.<key>"
            )
        else:
            layers.overlay(_nest(key_path, value), SET_SOURCE)

    for section, key in (("lakehouse", "root"), ("ingest", "landing_root"), ("sample_data", "dir")):
        node = layers.tree.get(section)
        if isinstance(node, dict) and isinstance(node.get(key), str):
            node[key] = resolve_root(node[key])
    try:
        return AppConfig.model_validate(layers.tree)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, layers)) from None


def resolve_root(root: str) -> str:
    """URIs (s3://, abfss://, dbfs:/) stay as they are; local paths become absolute."""
    if not root or "://" in root or root.startswith("dbfs:"):
        return root
    return str(Path(root).expanduser().resolve())


def _describe(exc: ValidationError, layers: _Layered) -> str:
    lines = []
    for error in exc.errors():
        loc = [str(p) for p in error["loc"]]
        key = ".".join(loc) or "<root>"
        source = layers.source_of(loc)
        if error["type"] == "missing":
            where = source or "no file sets it; add it to base.yaml or pass --set"
            lines.append(f"{where}: {key}: required value is missing")
        elif error["type"] == "extra_forbidden":
            lines.append(f"{source or '?'}: {key}: unknown key")
        elif not loc:  # a rule across keys; its message starts with the dotted key it is about
            message = error["msg"].removeprefix("Value error, ")
            named = re.match(r"([a-z_]+(?:\.[a-z_*]+)+):", message)
            where = layers.source_of(named.group(1).split(".")) if named else None
            lines.append(f"{where or 'config'}: {message}")
        else:
            lines.append(f"{source or 'config'}: {key}: {error['msg']} (got {error.get('input')!r})")
    return "invalid configuration:\n  " + "\n  ".join(lines)
