from setuptools import find_packages, setup

setup(
    name="turnout",
    version="0.1.0",
    description="Move a Flask monolith to microservices one feature at a time, under gevent.",
    python_requires=">=3.11",
    packages=find_packages(include=["monolith*", "extracted*", "shims*", "stravadev*",
                                    "scripts*"]),
    include_package_data=True,
    package_data={"monolith": ["templates/*.html", "templates/**/*.html", "static/*"]},
    install_requires=[
        "Flask>=3.1,<4",
        "Flask-Login>=0.6.3,<0.7",
        "Flask-WTF>=1.2,<2",
        "SQLAlchemy>=2.0,<3",
        "requests>=2.32,<3",
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
    entry_points={"console_scripts": ["turnout = scripts.cli:main"]},
)
