"""monolith.config: environment values typed at start-up, one shared secret per run directory."""

import os
import stat
from pathlib import Path

import pytest

from monolith.config import DEFAULTS, ConfigError, load_config, read_or_create_secret


def test_defaults_without_environment(tmp_path):
    config = load_config({"RUN_DIR": str(tmp_path)}, environ={})
    assert config["STRAVA_TIMEOUT"] == 5.0 and config["MAX_CONTENT_LENGTH"] == 1024 * 1024
    assert config["DATABASE_URL"] == f"sqlite:///{tmp_path.resolve() / 'monolith.db'}"
    assert config["SECRET_KEY"] is None


def test_environment_values_are_coerced_to_each_keys_type():
    config = load_config(environ={
        "TURNOUT_STRAVA_TIMEOUT": "2.5", "TURNOUT_STRAVA_IMPORT_DAYS": " 30 ",
        "TURNOUT_WTF_CSRF_ENABLED": "off", "TURNOUT_TESTING": "Yes",
        "TURNOUT_STRAVA_URL": "http://strava.example", "TURNOUT_DATABASE_URL": "sqlite://",
        "TURNOUT_API_TOKEN_MAX_AGE": "0",
    })
    assert config["STRAVA_TIMEOUT"] == 2.5 and isinstance(config["STRAVA_TIMEOUT"], float)
    assert config["STRAVA_IMPORT_DAYS"] == 30 and isinstance(config["STRAVA_IMPORT_DAYS"], int)
    assert config["WTF_CSRF_ENABLED"] is False and config["TESTING"] is True
    assert config["STRAVA_URL"] == "http://strava.example"
    assert config["DATABASE_URL"] == "sqlite://"
    assert config["API_TOKEN_MAX_AGE"] == 0


def test_empty_environment_values_keep_the_default():
    config = load_config(environ={"TURNOUT_DB_POOL_SIZE": "", "TURNOUT_STRAVA_URL": ""})
    assert config["DB_POOL_SIZE"] == DEFAULTS["DB_POOL_SIZE"]
    assert config["STRAVA_URL"] == DEFAULTS["STRAVA_URL"]


def test_the_callers_override_wins_over_the_environment():
    config = load_config({"STRAVA_IMPORT_DAYS": 7}, environ={"TURNOUT_STRAVA_IMPORT_DAYS": "30"})
    assert config["STRAVA_IMPORT_DAYS"] == 7


def test_unprefixed_variables_are_ignored():
    assert load_config(environ={"STRAVA_TIMEOUT": "oops"})["STRAVA_TIMEOUT"] == 5.0


@pytest.mark.parametrize("key, raw, mentions", [
    ("STRAVA_TIMEOUT", "soon", "must be float"),
    ("STRAVA_TIMEOUT", "-1", "must not be negative"),
    ("STRAVA_TIMEOUT", "nan", "finite"),
    ("STRAVA_TIMEOUT", "inf", "finite"),
    ("DB_POOL_SIZE", "ten", "must be int"),
    ("DB_POOL_SIZE", "2.5", "must be int"),
    ("DB_POOL_SIZE", "-3", "must not be negative"),
    ("MAX_CONTENT_LENGTH", "1MB", "must be int"),
    ("WTF_CSRF_ENABLED", "maybe", "true or false"),
    ("TESTING", "2", "true or false"),
])
def test_bad_values_raise_config_error_naming_the_variable(key, raw, mentions):
    with pytest.raises(ConfigError) as caught:
        load_config(environ={f"TURNOUT_{key}": raw})
    assert f"TURNOUT_{key}" in str(caught.value)
    assert mentions in str(caught.value)
    assert repr(raw) in str(caught.value)


def test_secret_is_created_once_private_and_then_read(tmp_path):
    run_dir = tmp_path / "run"
    first = read_or_create_secret(str(run_dir))
    assert len(first) == 64
    path = run_dir / "secret_key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert read_or_create_secret(str(run_dir)) == first
    assert path.read_text() == first


def test_an_existing_secret_is_read_stripped(tmp_path):
    (tmp_path / "secret_key").write_text("from-operator\n")
    assert read_or_create_secret(str(tmp_path)) == "from-operator"


def test_an_empty_secret_file_is_refused_with_a_way_out(tmp_path):
    (tmp_path / "secret_key").write_text("  \n")
    with pytest.raises(ConfigError, match="TURNOUT_SECRET_KEY"):
        read_or_create_secret(str(tmp_path))


def test_a_worker_arriving_while_another_creates_the_secret_reads_the_same_one(tmp_path,
                                                                              monkeypatch):
    """Workers start together: the second must never see a half-created (empty) file."""
    import secrets

    real_token_hex = secrets.token_hex
    seen_by_second = []
    arrived = []

    def token_hex_with_a_second_worker_arriving(nbytes=None):
        value = real_token_hex(nbytes)
        if not arrived:  # the second worker starts while the first is mid-creation
            arrived.append(True)
            seen_by_second.append(read_or_create_secret(str(tmp_path)))
        return value

    monkeypatch.setattr(secrets, "token_hex", token_hex_with_a_second_worker_arriving)
    first = read_or_create_secret(str(tmp_path))
    assert first == seen_by_second[0]
    assert Path(tmp_path / "secret_key").read_text() == first
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # no temporary left behind


def test_deadline_read_budget_write_attempts_and_ttl_have_their_defaults(tmp_path):
    config = load_config({"RUN_DIR": str(tmp_path)}, environ={})
    assert (config["REQUEST_DEADLINE"], config["REMOTE_READ_BUDGET"],
            config["REMOTE_WRITE_ATTEMPTS"], config["IDEMPOTENCY_TTL"]) == (10.0, 1.0, 3, 86400)


@pytest.mark.parametrize("key, raw", [("REQUEST_DEADLINE", "0"), ("REMOTE_READ_BUDGET", "0.0"),
                                      ("REMOTE_WRITE_ATTEMPTS", "0"), ("IDEMPOTENCY_TTL", "0")])
def test_a_zero_deadline_budget_attempt_count_or_ttl_is_refused_naming_it(key, raw):
    with pytest.raises(ConfigError) as caught:
        load_config(environ={f"TURNOUT_{key}": raw})
    assert f"TURNOUT_{key} must be greater than 0" in str(caught.value)


def test_the_services_refuse_a_zero_deadline_too():
    from extracted.dataservice.app import load_config as dataservice_config
    from extracted.reports.app import load_config as reports_config

    with pytest.raises(ConfigError, match="TURNOUT_REQUEST_DEADLINE"):
        reports_config({"REQUEST_DEADLINE": 0})
    with pytest.raises(ConfigError, match="TURNOUT_IDEMPOTENCY_TTL"):
        dataservice_config({"IDEMPOTENCY_TTL": 0})
