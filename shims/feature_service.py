"""An extracted service for one feature of a registry, in a process of its own.

    app = feature_service(REGISTRY, "profiles")   # what `turnout new-service` writes

It answers the feature's contracts on `/rpc` with the feature's own local implementation
(the registry's factories), plus `/openapi.json`, `/healthz` and `/metrics`, one deadline
per request, and dealer tokens once `SERVICE_TOKENS` is on. Run on the monolith's
database, it is the first step of a strangler extraction: the same code, moved behind the
contract into its own process, switched with the feature's flag. Giving it a database of
its own comes next (docs/adopting.md).

A local side that calls other features (`Resources.routed`) needs them wired in the
service too; this builder gives it none, and says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from shims import deadline
from shims.auth import AUTH_DEFAULTS
from shims.extension import Routed
from shims.registry import Registry, Resources
from shims.service_app import service_app
from shims.settings import ConfigError, load_settings

SERVICE_DEFAULTS: dict[str, Any] = {
    "RUN_DIR": "run",
    **AUTH_DEFAULTS,
    "SERVICE_TOKENS": True,
    "MAX_CONTENT_LENGTH": 1024 * 1024,
    **deadline.DEFAULTS,
}


def feature_service(registry: Registry, feature_name: str,
                    config: Mapping[str, Any] | None = None,
                    environ: Mapping[str, str] | None = None) -> Flask:
    """The service app of `feature_name`; `config` overrides settings (tests)."""
    feature = registry.feature(feature_name)
    if feature.service is None:
        raise ConfigError(f"feature {feature.name!r} has no service: give its Feature a "
                          "service name and remote clients first")
    settings = load_settings({**SERVICE_DEFAULTS, **registry.defaults}, config, environ,
                             positive=tuple(deadline.DEFAULTS))
    resources = Resources(settings=settings, engine=None, routed=_NoOtherFeatures(feature.name))
    bindings = [(binding.spec, binding.local(resources)) for binding in feature.bindings]
    return service_app(feature.service, settings, bindings, setup=registry.service_setup,
                       title=f"{feature.service} service",
                       description=f"The {feature.name} feature, extracted: each operation "
                                   "is one contract method; POST its arguments as "
                                   '{"args": {...}}, get {"result": ...} or a JSON error.')


class _NoOtherFeatures(Routed):
    def __init__(self, feature: str):
        super().__init__({})
        self._feature = feature

    def __getattr__(self, name: str) -> Any:
        raise ConfigError(f"feature {self._feature!r} calls {name!r}, which its service does "
                          "not wire: build this service with its own factory")
