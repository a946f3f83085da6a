"""circus.ini as the `turnout` command reads it: the processes, their sockets, circusd's endpoint.

Only what the command needs: each watcher (in the file's order), the circus-owned socket
it serves on (the first `$(circus.sockets.NAME)` in its cmd or args, or else a socket of
its own name), and where circusd listens. `$(circus.env.X)` and `((circus.env.X))` are
resolved as circusd resolves them: case-insensitively, from the environment and circus.ini's
own `[env]` section. A variable circus.ini uses that nobody set is refused here, with its
name, rather than left for circusd to pass on as the text `$(circus.env.X)`.
"""

from __future__ import annotations

import configparser
import glob
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shims.settings import ConfigError

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"  # circusd's own defaults
DEFAULT_SOCKET = {"host": "localhost", "port": "8080"}
ENDPOINTS = ("endpoint", "pubsub_endpoint", "stats_endpoint")
_NAME = r"([\w.-]+)"
ENV_VARIABLE = re.compile(rf"\$\(circus\.env\.{_NAME}\)|\(\(circus\.env\.{_NAME}\)\)", re.I)
SOCKET_VARIABLE = re.compile(rf"\$\(circus\.sockets\.{_NAME}\)|\(\(circus\.sockets\.{_NAME}\)\)",
                             re.I)
# A unix socket's path must fit sockaddr_un's sun_path (108 bytes with its NUL, on Linux):
# zmq refuses a longer ipc:// endpoint only once circusd is already starting.
IPC_PATH_MAX = 107
TCP = re.compile(r"^tcp://(?P<host>[^:/]+|\[[^\]]+\]):(?P<port>[^/]*)$")
# Where a socket bound to every address is reached from this host.
LOCAL_OF = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # nosec B104: no bind, a lookup


@dataclass(frozen=True)
class Socket:
    name: str
    host: str
    port: int | None  # None: a unix socket
    # Where the port came from, for messages: "TURNOUT_MONOLITH_PORT", or None if literal.
    port_variable: str | None = None

    @property
    def url(self) -> str | None:
        if self.port is None:
            return None
        host = LOCAL_OF.get(self.host, self.host)
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"


@dataclass(frozen=True)
class Watcher:
    name: str
    socket: Socket | None
    # Whether its section sets `uid`: without one, a root circusd runs it as root.
    sets_uid: bool = False

    @property
    def url(self) -> str | None:
        """Where its `/healthz` answers; None for a watcher with no TCP socket."""
        return self.socket.url if self.socket else None


@dataclass(frozen=True)
class CircusConfig:
    path: Path
    endpoint: str
    watchers: tuple[Watcher, ...]
    sockets: dict[str, Socket] = field(default_factory=dict, hash=False)
    endpoint_variable: str | None = None  # the variable its port came from, for messages
    # Whether [circus] says where circusd logs; without it circusd writes to the stdout it
    # was started with, and dies when that pipe or terminal goes (turnout up then logs it).
    logs_itself: bool = False

    def watcher(self, name: str) -> Watcher | None:
        return next((w for w in self.watchers if w.name == name), None)


def read_circus(path: Path, env: Mapping[str, str]) -> CircusConfig:
    parser = _parse(path)
    lookup = {name.lower(): value for name, value in env.items()}
    if parser.has_section("env"):  # circusd lets circus.ini's [env] win over the environment
        lookup.update({name.lower(): value for name, value in parser.items("env")})
    values = _resolved(parser, lookup, path)
    circus = values.get("circus", {})
    for name in ENDPOINTS:
        if name in circus:
            _check_endpoint(circus[name], parser.get("circus", name), f"[circus] {name}", path)
    sockets = {socket.name: socket for socket in _sockets(parser, values, path)}
    watchers = tuple(_watcher(parser, section, values[section], sockets, path)
                     for section in parser.sections() if section.startswith("watcher:"))
    return CircusConfig(path=path, endpoint=circus.get("endpoint", DEFAULT_ENDPOINT),
                        watchers=watchers, sockets=sockets,
                        endpoint_variable=_variable_in(parser.get("circus", "endpoint",
                                                                  fallback="")),
                        logs_itself="logoutput" in circus)


def _parse(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # circusd keeps case
    try:
        with path.open() as handle:
            parser.read_file(handle)
        included = [_include(path, pattern) for pattern in
                    parser.get("circus", "include", fallback="").split()]
        included += [_include(path, str(Path(directory) / "*.ini")) for directory in
                     parser.get("circus", "include_dir", fallback="").split()]
        parser.read([name for names in included for name in names])
    except OSError as exc:
        raise ConfigError(f"cannot read {exc.filename or path}: {exc.strerror}") from None
    except configparser.Error as exc:
        raise ConfigError(f"{path} is not a valid circus.ini: "
                          f"{' '.join(str(exc).split())}") from None
    return parser


def _include(path: Path, pattern: str) -> list[str]:
    """Paths of an include, relative to the main file as circusd takes them."""
    return sorted(glob.glob(pattern if Path(pattern).is_absolute()
                            else str(path.parent / pattern)))


def _resolved(parser: configparser.RawConfigParser, lookup: Mapping[str, str],
              path: Path) -> dict[str, dict[str, str]]:
    """Every option of every section but the env ones (circusd expands `$VAR` there)."""
    values: dict[str, dict[str, str]] = {}
    for section in parser.sections():
        if section == "env" or section.startswith("env:"):
            continue
        values[section] = {option: _substitute(raw, lookup, f"[{section}] {option}", path)
                           for option, raw in parser.items(section)}
    return values


def _substitute(raw: str, lookup: Mapping[str, str], where: str, path: Path) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name.lower() not in lookup:
            raise ConfigError(f"{path}: {where} uses $(circus.env.{name}), which is not set: "
                              "export it, or give it a default in turnout.toml [env]")
        return lookup[name.lower()]

    return ENV_VARIABLE.sub(value, raw)


def _sockets(parser: configparser.RawConfigParser, values: dict[str, dict[str, str]],
             path: Path) -> list[Socket]:
    sockets = []
    for section in parser.sections():
        if not section.startswith("socket:"):
            continue
        name = section.split(":", 1)[1].strip().lower()  # circusd lowers socket names
        options = {**DEFAULT_SOCKET, **values[section]}
        if "path" in options:
            sockets.append(Socket(name, host="", port=None))
            continue
        raw = parser.get(section, "port", fallback="8080")
        variable = _variable_in(raw)
        port = _port(options["port"], variable, f"the port of [{section}]", path)
        sockets.append(Socket(name, host=options["host"], port=port, port_variable=variable))
    return sockets


def _watcher(parser: configparser.RawConfigParser, section: str, options: dict[str, str],
             sockets: dict[str, Socket], path: Path) -> Watcher:
    name = section.split(":", 1)[1].strip()
    numprocesses = options.get("numprocesses", "1")
    if not numprocesses.isdigit():
        raise ConfigError(f"{path}: [{section}] numprocesses must be a whole number, got "
                          f"{numprocesses!r}{_from(parser.get(section, 'numprocesses'))}")
    command = f"{options.get('cmd', '')} {options.get('args', '')}"
    used = [(m.group(1) or m.group(2)).lower() for m in SOCKET_VARIABLE.finditer(command)]
    for socket in used:
        if socket not in sockets:
            raise ConfigError(f"{path}: [{section}] uses $(circus.sockets.{socket}), but there "
                              f"is no [socket:{socket}]")
    chosen = used[0] if used else name.lower() if name.lower() in sockets else None
    return Watcher(name=name, socket=sockets[chosen] if chosen else None,
                   sets_uid=bool(parser.get(section, "uid", fallback="").strip()))


def _check_endpoint(value: str, raw: str, where: str, path: Path) -> None:
    if value.startswith("ipc://"):
        socket_path = value[len("ipc://"):]
        if len(socket_path.encode()) > IPC_PATH_MAX:
            raise ConfigError(f"{path}: {where} {value!r} is longer than a unix socket path "
                              f"may be ({IPC_PATH_MAX} bytes): use a shorter TURNOUT_RUN_DIR "
                              "or TURNOUT_CIRCUS_DIR")
        return
    match = TCP.match(value)
    if match is None:
        if value.startswith("tcp://"):
            raise ConfigError(f"{path}: {where} must look like tcp://HOST:PORT, got {value!r}")
        return  # other transports: no port to check
    _port(match["port"], _variable_in(raw), f"the port of {where}", path)


def _port(value: str, variable: str | None, what: str, path: Path) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        named = variable or "a port"
        raise ConfigError(f"{named} must be a whole number from 1 to 65535, got {value!r} "
                          f"({what} in {path})")
    return int(value)


def _variable_in(raw: str) -> str | None:
    match = ENV_VARIABLE.search(raw)
    return (match.group(1) or match.group(2)) if match else None


def _from(raw: str) -> str:
    variable = _variable_in(raw)
    return f" (from {variable})" if variable else ""
