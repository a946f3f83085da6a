from setuptools import find_packages, setup

setup(
    name="turnout",
    version="0.1.0",
    description="Move a Flask monolith to microservices one feature at a time, under gevent.",
    python_requires=">=3.11",
    # The kit alone. Runnerly (monolith, extracted, contracts, stravadev, scripts) is the
    # reference app: it runs from the checkout (the project root is on sys.path for the
    # `turnout` command and for gunicorn, which runs in circus's working_dir), never
    # installed into a team's environment.
    packages=find_packages(include=["shims", "shims.*"]),
    # The dashboard's templates and stylesheet (shims/dashboard): a wheel without them
    # would import, then fail at the first page.
    package_data={"shims.dashboard": ["templates/turnout_dashboard/*.html", "static/*.css"]},
    # The kit's own dependencies, with loose floors that tests/lowest-constraints.txt pins
    # and `tox -e lowest` tests (tests/kit/test_dependencies.py keeps the two equal): a
    # legacy app keeps its Flask and SQLAlchemy. Floors above a library's first usable
    # release say why. Runnerly's own (Flask-Login, Flask-WTF, psycopg) are in
    # requirements.txt, which the README's commands install.
    install_requires=[
        "Flask>=2.2",
        "Werkzeug>=2.2",  # imported directly (shims/service.py, shims/transport.py)
        # 1.4.0-1.4.3 warn "transaction already deassociated" when a keyed write rolls back
        # inside its begin() block (shims/outcomes.py).
        "SQLAlchemy>=1.4.4",
        "requests>=2.25",  # the first to accept urllib3 1.26
        "urllib3>=1.26",
        # Older gevent loads its plugins through pkg_resources, which no longer finds
        # current zope.interface releases; gunicorn's gevent extra asks for 24.10.1 anyway.
        "gevent>=24.10.1",
        # 25.1 is the first with --no-control-socket, which circus.ini's watchers pass.
        "gunicorn[gevent]>=25.1",
        # The `turnout` command's, not shims/'s: tox -e lowest installs, not exercises, them.
        "circus>=0.19",
        "psutil>=5.9",
        "tenacity>=6.1",  # 6.0 uses asyncio.coroutine, gone in Python 3.11
        "prometheus-client>=0.15",  # the first with the "livemax"/"livemin" gauge modes
        # 2.4 fixes CVE-2022-29217; 2.10.0 matches issuers by substring (CVE-2024-53861).
        "PyJWT[crypto]>=2.4,!=2.10.0",
        # The token dealer's keys (shims/tokendealer/keys.py); 42.0.4 fixes CVE-2024-26130.
        "cryptography>=42.0.4",
        # Traces (shims/telemetry.py): dependencies, not an extra, because the traceparent
        # is how a request is followed across the processes a migration splits it into; no
        # exporter is made, nor anything sent, unless OTEL_TRACES_EXPORTER asks. 1.20 is the
        # lowest tested; older APIs import pkg_resources (before 1.16) or need setuptools
        # (before 1.19). From 1.26 to 1.42 the API reads installed packages' entry points
        # once when imported (files, no network); 1.43 and later skip it by default.
        "opentelemetry-api>=1.20",
        "opentelemetry-sdk>=1.20",
        # JSON log lines (shims/logs.py); 21.3 is the first ProcessorFormatter that takes
        # a processor chain (`processors=`).
    ],
    # OTLP/HTTP export pulls protobuf, which a legacy app may pin at a version of its own:
    # an extra, asked for by `pip install turnout[otlp]` where spans are exported.
    extras_require={"otlp": ["opentelemetry-exporter-otlp-proto-http>=1.20"]},
    entry_points={"console_scripts": ["turnout = shims.cli:main"]},
    # PostgreSQL for the flag store and services' databases: psycopg 3, whose SQLAlchemy
    # dialect arrived in 2.0 (on 1.4 the kit's databases are SQLite; shims/sql.py says so).
)
