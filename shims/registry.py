"""What a team tells the kit about its monolith: the features its flags route.

A `Feature` is one flag. It names the contracts that flag routes (one `Binding` each:
the contract's spec, a factory for its in-process implementation, and its remote client
class), the extracted service that answers them remotely, and, if the feature owns
rows, how to reach them (`DataPath`) so writes can be mirrored, copied and verified.

A `Registry` is declarative and cheap to import: the `turnout` command reads it (feature
names, which own data, each side's rows) without building the app, and the composition
root (`shims.extension.Turnout`) builds every implementation from it once per process,
handing each factory the process's `Resources`.

    registry = Registry([
        Feature("profiles", service="profiles", url="http://127.0.0.1:5010",
                bindings=[Binding(PROFILES, local=lambda r: LocalProfiles(),
                                  remote=RemoteProfiles)]),
    ])
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from shims.contract import ContractSpec
from shims.flags.model import FeatureInfo
from shims.settings import ConfigError
from shims.sync import DataSync, Mirror

FEATURE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")  # a flag name, an env-var-safe word


@dataclass(frozen=True)
class Resources:
    """What a local factory may use, handed over by the composition root."""

    settings: Mapping[str, Any]
    # The monolith's database (outbox, mirror leases, keyed outcomes); None if it has none.
    engine: Engine | None
    # Contracts routed so far, by contract name: a later feature's local side calls an
    # earlier feature through its router, so it follows that feature's flag too.
    routed: Mapping[str, Any]
    # Whatever else the app passes to `init_app(extras=...)`: sessions, API clients.
    extras: Mapping[str, Any] = field(default_factory=dict)


LocalFactory = Callable[[Resources], Any]


@dataclass(frozen=True)
class Binding:
    """One contract of a feature and its two implementations."""

    spec: ContractSpec
    local: LocalFactory
    # The Remote<Feature> client class, called as remote(transport, **client_options).
    remote: Callable[..., Any] | None = None


@dataclass(frozen=True)
class DataPath:
    """How a feature that owns rows is kept in step across the two databases
    (docs/turnout.md §4): its rows in the monolith's database, and which rows a write
    touched. The service side is reached over its `/rpc` sync contract.

    `tables` names the tables `turnout data copy|verify` walk, each with the row kind
    (`RowKey.entity`) its rows travel as, parents first: a copy moves them in this order,
    so foreign keys hold at every step. `service_sync`, if given, reaches the service's
    own database directly (settings in, a `DataSync` out): the `turnout` command then
    moves stages, copies and verifies with the service's processes down; without it,
    the command goes through the service's `/rpc`."""

    local_sync: Callable[[Engine], DataSync]
    mirror: Mirror
    tables: Mapping[str, str] = field(default_factory=dict, hash=False)
    service_sync: Callable[[Mapping[str, Any]], DataSync] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "tables", dict(self.tables))
        for table, entity in self.tables.items():
            if not (isinstance(table, str) and isinstance(entity, str) and table and entity):
                raise ConfigError(f"DataPath tables: {table!r}: {entity!r} must map a table "
                                  "name to the row kind its rows travel as, both words")


@dataclass(frozen=True)
class Feature:
    name: str
    bindings: tuple[Binding, ...]
    # The extracted service answering this feature remotely (its token audience); None
    # while the feature has no remote side yet. Its URL is the setting `<SERVICE>_URL`.
    service: str | None = None
    url: str | None = None  # that setting's default
    data: DataPath | None = None
    # Contexts the shadow side runs in besides the request's app context (a tenant, say):
    # each factory is called as the shadow starts, its context entered around the call.
    shadow_context: tuple[Callable[[], AbstractContextManager[Any]], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "bindings", tuple(self.bindings))
        object.__setattr__(self, "shadow_context", tuple(self.shadow_context))
        if not FEATURE_NAME.match(self.name):
            raise ConfigError(f"feature name {self.name!r} must be a lowercase word "
                              "(letters, digits, _), starting with a letter")
        if not self.bindings:
            raise ConfigError(f"feature {self.name!r} needs at least one Binding")
        if self.service is not None and not FEATURE_NAME.match(self.service):
            raise ConfigError(f"feature {self.name!r}: service name {self.service!r} must be "
                              "a lowercase word (letters, digits, _)")
        unreachable = [b.spec.name for b in self.bindings if self.service and b.remote is None]
        if unreachable:
            raise ConfigError(f"feature {self.name!r} has a service but no remote client for "
                              f"{', '.join(unreachable)}")
        if self.data is not None and self.service is None:
            raise ConfigError(f"feature {self.name!r} owns data but has no service to "
                              "mirror it to")

    @property
    def info(self) -> FeatureInfo:
        return FeatureInfo(self.name, has_remote=self.service is not None,
                           owns_data=self.data is not None)

    @property
    def url_setting(self) -> str | None:
        return f"{self.service.upper()}_URL" if self.service else None


class Registry:
    """Every feature of one monolith, in build order: a feature's local side may use the
    routed contracts of the features before it.

    `defaults`: the app's own settings its local sides read (each settable by a `TURNOUT_`
    variable), in the monolith and in an extracted service alike. `service_setup(app)`:
    what a service answering these contracts in its own process must bring up first, on
    its Flask app (a team's `db.init_app(app)`, say); see shims/feature_service.py."""

    def __init__(self, features: Iterable[Feature], *, defaults: Mapping[str, Any] | None = None,
                 service_setup: Callable[[Any], None] | None = None):
        self.features: tuple[Feature, ...] = tuple(features)
        self.defaults: dict[str, Any] = dict(defaults or {})
        self.service_setup = service_setup
        _require_unique("feature", [f.name for f in self.features])
        _require_unique("contract", [b.spec.name for f in self.features for b in f.bindings])

    def __iter__(self) -> Iterator[Feature]:
        return iter(self.features)

    def __getitem__(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)

    def infos(self) -> dict[str, FeatureInfo]:
        """What the flag store needs: each feature's name, remote side and data."""
        return {feature.name: feature.info for feature in self.features}

    def settings_defaults(self) -> dict[str, Any]:
        """The app's defaults and `<SERVICE>_URL` for each service (`TURNOUT_<SERVICE>_URL`
        sets it)."""
        return {**self.defaults, **{f.url_setting: f.url for f in self.features
                                    if f.url_setting}}

    def feature(self, name: str) -> Feature:
        """The feature called `name`, or a ConfigError listing the ones there are."""
        try:
            return self[name]
        except KeyError:
            raise ConfigError(f"unknown feature {name!r}; known features: "
                              f"{', '.join(f.name for f in self.features)}") from None


def _require_unique(what: str, names: list[str]) -> None:
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ConfigError(f"{what} names must be unique; repeated: {', '.join(repeated)}")


def load_registry(path: str) -> Registry:
    """The registry at `module:attribute` (the app's own, for the `turnout` command); a
    callable there is called with no arguments."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"registry {path!r} must look like 'package.module:attribute'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"registry {path!r}: cannot import {module_name} ({exc})") from exc
    try:
        found = getattr(module, attribute)
    except AttributeError:
        raise ConfigError(f"registry {path!r}: {module_name} has no {attribute!r}") from None
    registry = found() if callable(found) and not isinstance(found, Registry) else found
    if not isinstance(registry, Registry):
        raise ConfigError(f"registry {path!r} is a {type(registry).__name__}, not a "
                          "shims.registry.Registry")
    return registry
