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
    install_requires=[
        "Flask>=3.1,<4",
        "Flask-Login>=0.6.3,<0.7",
        "Flask-WTF>=1.2,<2",
        "SQLAlchemy>=2.0,<3",
        "requests>=2.32,<3",
        "urllib3>=2.2,<3",
        "gevent>=24",
        "gunicorn[gevent]>=23",
        "circus>=0.19,<0.20",
        "psutil>=5.9",
        "tenacity>=8.2",
        "prometheus-client>=0.20",
        "psycopg[binary]>=3.2",
        "PyJWT[crypto]>=2.10,<3",
        "cryptography>=44",
    ],
    entry_points={"console_scripts": ["turnout = shims.cli:main"]},
)
