"""Run a team's *existing* tests with any feature in any mode: the `turnout` pytest plugin.

    pytest --turnout-mode profiles=shadow
    pytest --turnout-mode profiles=canary:50 --turnout-service profiles=service.app:create_app
    pytest --turnout-mode profiles=remote --turnout-service profiles=http://127.0.0.1:5010

Every app the tests build with `Turnout().init_app` (shims/extension.py) is seen as it is
built, without a line of the app changing:

- each named feature is set to its mode in that app's flag store as the app is built, so
  the data its fixtures make goes through the mode too (a test's
  `@pytest.mark.turnout(profiles="remote")` marker overrides the command line for the
  apps built for that test);
- `--turnout-service FEATURE=module:factory` serves the feature's remote side in this
  process over WSGI (the factory is called with the monolith app's config and
  `SERVICE_TOKENS` off, or with nothing, and returns the service's app), `FEATURE=URL`
  by a real process;
- each shadow compares before its routed call returns (a plain test never yields to
  gevent's hub, so it would otherwise never run, and a shadow left to run later would
  read what a later step of the test wrote), and any still running when the test ends
  are drained then; a mismatch, or a shadow side that failed or timed out,
  fails the test naming each difference, as GitHub Scientist's `raise_on_mismatches`
  does (`--turnout-allow-mismatch` only counts);
- the summary says how many comparisons were made, so "shadow passed" cannot mean
  "nothing was compared".

Enabled by the kit's `pytest11` entry point, or `-p shims.pytest_plugin`. It imports no
part of the kit until a test session configures it: a suite's conftest must be able to
patch gevent first.
"""

from __future__ import annotations

import importlib
import inspect
import weakref
from collections import Counter
from typing import Any

import pytest

MODE_OPTION = "--turnout-mode"
SERVICE_OPTION = "--turnout-service"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("turnout", "Turnout: run the suite with features routed")
    group.addoption(MODE_OPTION, action="append", default=[], metavar="FEATURE=MODE[:PERCENT]",
                    help="route FEATURE in MODE for every test (repeat or comma-separate; "
                         "e.g. profiles=shadow, profiles=canary:50)")
    group.addoption(SERVICE_OPTION, action="append", default=[],
                    metavar="FEATURE=module:factory|URL",
                    help="serve FEATURE's remote side in-process from the WSGI app the "
                         "factory returns, or at URL")
    group.addoption("--turnout-drain", type=float, default=5.0, metavar="SECONDS",
                    help="how long to wait for a request's shadows (default 5)")
    group.addoption("--turnout-allow-mismatch", action="store_true",
                    help="count shadow mismatches without failing the test")
    parser.addini("turnout_modes", "FEATURE=MODE[:PERCENT] lines, as --turnout-mode",
                  type="linelist", default=[])
    parser.addini("turnout_services", "FEATURE=module:factory|URL lines, as --turnout-service",
                  type="linelist", default=[])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "turnout(**modes): route features for this test, "
                                       "e.g. @pytest.mark.turnout(profiles='remote')")
    modes = _pairs(config.getini("turnout_modes") + _split(config.getoption(MODE_OPTION)),
                   MODE_OPTION)
    services = _pairs(config.getini("turnout_services") + config.getoption(SERVICE_OPTION),
                      SERVICE_OPTION)
    if not modes and not services:
        return  # nothing asked: the plugin stays out of the way
    harness = Harness({name: parse_mode(name, value) for name, value in modes.items()},
                      services, drain=config.getoption("--turnout-drain"),
                      allow_mismatch=config.getoption("--turnout-allow-mismatch"))
    config.pluginmanager.register(harness, "turnout-harness")


def parse_mode(feature: str, value: str) -> tuple[str, float | None]:
    mode, _, percent = value.partition(":")
    if not percent:
        return mode, None
    try:
        return mode, float(percent)
    except ValueError:
        raise pytest.UsageError(f"{MODE_OPTION} {feature}={value}: the percentage after ':' "
                                "must be a number from 0 to 100") from None


def _split(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _pairs(values: list[str], option: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name.strip() or not rest.strip():
            raise pytest.UsageError(f"{option} {value!r}: expected FEATURE=VALUE")
        pairs[name.strip()] = rest.strip()
    return pairs


class Harness:
    """The plugin's state for one session: every Turnout app built, and what its shadows said."""

    def __init__(self, modes: dict[str, tuple[str, float | None]], services: dict[str, str], *,
                 drain: float, allow_mismatch: bool):
        from shims.extension import add_init_hook
        from shims.shadow import ShadowRecorder

        self.modes = modes
        self.services = services
        self.drain_seconds = drain
        self.allow_mismatch = allow_mismatch
        self.recorder = ShadowRecorder()  # this test's outcomes
        self.totals: Counter[str] = Counter()  # the session's
        self.states: list[weakref.ref] = []  # an app's state lives as long as its app
        self.test_modes = modes
        self._remove_hook = add_init_hook(self)

    # --- shims.extension.InitHook ---------------------------------------------------------

    def transports(self, app, registry, settings) -> dict[str, Any]:
        from shims.transport import WsgiTransport, transport_for

        found = {}
        for feature, target in self.services.items():
            if feature not in registry.infos():
                raise pytest.UsageError(f"{SERVICE_OPTION} {feature}: no such feature; the "
                                        f"registry has {', '.join(registry.infos())}")
            if target.startswith(("http://", "https://")):
                found[feature] = transport_for(settings, target)
            else:
                found[feature] = WsgiTransport(_service_app(target, app.config))
        return found

    def built(self, app, state) -> None:
        for runner in state.shadows:
            runner.add_listener(self.recorder)
            runner.synchronous = True  # each shadow compares before its call returns
        self.states = [ref for ref in self.states if ref() is not None] + [weakref.ref(state)]
        self._apply(state, self.test_modes)

    # --- pytest hooks ---------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item):
        marker = item.get_closest_marker("turnout")
        self.test_modes = {**self.modes, **{name: parse_mode(name, value) for name, value
                                            in (marker.kwargs.items() if marker else ())}}
        self.recorder.clear()
        return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item):
        result = yield  # a failing test fails as it is; then the shadows have their say
        self._finish_test()
        return result

    def pytest_terminal_summary(self, terminalreporter) -> None:
        counted = ", ".join(f"{n} {result}" for result, n in sorted(self.totals.items()))
        modes = ", ".join(f"{name}={mode}" + (f":{percent:g}" if percent is not None else "")
                          for name, (mode, percent) in self.modes.items())
        terminalreporter.write_line(f"turnout: modes {modes or '(as the flags say)'}; "
                                    f"shadow outcomes: {counted or 'none'}")

    def pytest_unconfigure(self) -> None:
        self._remove_hook()

    # --- helpers ----------------------------------------------------------------------------

    def _apply(self, state, modes: dict[str, tuple[str, float | None]]) -> None:
        for feature, (mode, percent) in modes.items():
            if feature not in state.registry.infos():
                raise pytest.UsageError(f"{MODE_OPTION} {feature}: no such feature; the "
                                        f"registry has {', '.join(state.registry.infos())}")
            current = state.control.store.snapshot().flag(feature)
            if (current.mode, current.percent) != (mode, percent):
                state.control.store.set(feature, mode, percent, actor="pytest")
            state.control.flags.refresh_now()

    def _finish_test(self) -> None:
        live = [state for state in (ref() for ref in self.states) if state is not None]
        left = sum(state.drain_shadows(self.drain_seconds) for state in live)
        outcomes = list(self.recorder.outcomes)
        self.totals.update(outcome.result for outcome in outcomes)
        problems = [outcome for outcome in outcomes if outcome.problem]
        if left:
            pytest.fail(f"turnout: {left} shadow(s) still running after "
                        f"{self.drain_seconds:g}s (--turnout-drain)", pytrace=False)
        if problems and not self.allow_mismatch:
            lines = "\n".join(_describe(problem) for problem in problems[:20])
            pytest.fail(f"turnout: {len(problems)} shadow problem(s):\n{lines}", pytrace=False)


def _describe(outcome: Any) -> str:
    mismatch = outcome.mismatch
    if mismatch is None:
        return f"  {outcome}"
    return (f"  {outcome}\n    {mismatch.primary_side} (primary): {mismatch.primary}\n"
            f"    other side (shadow): {mismatch.shadow}")


def _service_app(target: str, config: Any) -> Any:
    module_name, _, attribute = target.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise pytest.UsageError(f"{SERVICE_OPTION} {target}: cannot load it ({exc})") from exc
    if not inspect.signature(factory).parameters:
        return factory()
    # In one process there is no token dealer to ask: the service takes calls without.
    return factory({**dict(config), "SERVICE_TOKENS": False})
