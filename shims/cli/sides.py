"""The two sides of each feature that owns data, as the `turnout` command reaches them.

The monolith's side is the registry's `DataPath.local_sync` on the monolith's database
(the setting `database` names in turnout.toml). The service's side is the registry's
`DataPath.service_sync` when it offers one (the service's own database, reached directly,
so stage moves, copies and verifies work while its processes are down); otherwise the
service's `/rpc` sync contract over HTTP, at `<SERVICE>_URL`, with a dealer token when this
command has a client secret (`TURNOUT_CLIENT_SECRET_FILE`), as the monolith would call it.
"""

from __future__ import annotations

from typing import Any

from shims.cli.project import Project
from shims.extension import service_transport
from shims.mirror import Channel, mirror_channels
from shims.registry import Feature
from shims.settings import ConfigError
from shims.sql import make_engine
from shims.sync import DataSync, RemoteDataSync


class DataSides:
    """Each feature's mirror channels, built once per command, by the side they deliver to
    (`shims.mirror.LOCAL`, `REMOTE`)."""

    def __init__(self, project: Project):
        self._project = project
        self._channels: dict[str, dict[str, Channel]] = {}
        self._engines: dict[str, Any] = {}

    def channels(self, feature: Feature) -> dict[str, Channel]:
        if feature.name not in self._channels:
            if feature.data is None:
                raise ConfigError(f"feature {feature.name!r} owns no data")
            self._channels[feature.name] = mirror_channels(
                feature.name, self._local(feature), self._service(feature))
        return self._channels[feature.name]

    def _local(self, feature: Feature) -> DataSync:
        url = self._project.database_url(feature.name)
        if url not in self._engines:  # one small pool for every feature in this database
            self._engines[url] = make_engine(url, pool_size=2)
        return feature.data.local_sync(self._engines[url])

    def _service(self, feature: Feature) -> DataSync:
        settings = self._project.settings
        if feature.data.service_sync is not None:
            return feature.data.service_sync(settings)
        return RemoteDataSync(service_transport(settings, feature))

    def close(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
