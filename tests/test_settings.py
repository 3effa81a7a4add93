"""Settings come from the environment and fail loudly on bad values."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from bursar.env import env_bool, env_choice, env_int, env_list

ROOT = Path(__file__).resolve().parent.parent


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    dropped = {"DEBUG", "SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE"}  # the browser tests set the last one
    base = {key: value for key, value in os.environ.items() if key not in dropped}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=base | env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("yes", True), ("ON", True), ("0", False), ("off", False)])
def test_booleans_accept_the_usual_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("FLAG", raw)
    assert env_bool("FLAG") is expected


@pytest.mark.parametrize(
    ("reader", "raw"),
    [
        (lambda: env_bool("FLAG"), "maybe"),
        (lambda: env_int("FLAG", 1), "ten"),
        (lambda: env_int("FLAG", 1, minimum=1), "0"),
        (lambda: env_choice("FLAG", "a", {"a", "b"}), "c"),
    ],
)
def test_bad_values_fail_loudly_naming_the_variable(monkeypatch, reader, raw):
    monkeypatch.setenv("FLAG", raw)
    with pytest.raises(ImproperlyConfigured, match="FLAG"):
        reader()


def test_lists_are_comma_separated(monkeypatch):
    monkeypatch.setenv("HOSTS", " a.example, b.example ,,")
    assert env_list("HOSTS") == ["a.example", "b.example"]


def test_production_refuses_to_start_without_a_secret_key():
    result = run_manage("check", DEBUG="0")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_a_typo_in_a_switch_stops_start_up():
    result = run_manage("check", DEBUG="perhaps")
    assert result.returncode != 0
    assert "DEBUG='perhaps' is not a boolean" in result.stderr


def test_deploy_check_is_clean_in_production_settings():
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="0",
        SECRET_KEY="k" * 20 + "a-real-random-production-secret-1f0e9d8c7b6a5",
        ALLOWED_HOSTS="bursar.example.com",
        SECURE_SSL_REDIRECT="1",
        SESSION_COOKIE_SECURE="1",
        CSRF_COOKIE_SECURE="1",
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_logs_are_json_lines_with_structured_fields_and_no_secrets(tmp_path):
    env = {"DEBUG": "0", "SECRET_KEY": "s" * 50, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    assert run_manage("migrate", "-v0", **env).returncode == 0
    result = run_manage(
        "create_api_token", "--name", "log-check", "--role", "viewer", LOG_FORMAT="json", LOG_LEVEL="info", **env
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    recorded = [line for line in lines if line.get("message") == "change recorded"]
    assert recorded and recorded[0]["action"] == "api_token.create"
    assert recorded[0]["level"] == "INFO" and recorded[0]["via"] == "command"
    assert token not in result.stderr


def test_sso_only_starts_without_local_two_factor_and_needs_a_provider():
    sso = {"DEBUG": "1", "SSO_ONLY": "1", "SSO_OIDC_CLIENT_ID": "bursar", "SSO_OIDC_SERVER_URL": "http://idp.example"}
    assert run_manage("check", **sso).returncode == 0, run_manage("check", **sso).stderr
    without = run_manage("check", DEBUG="1", SSO_ONLY="1")
    assert without.returncode != 0 and "SSO_ONLY needs at least one SSO provider" in without.stderr


def test_auto_provisioning_needs_allowed_domains():
    result = run_manage("check", DEBUG="1", SSO_AUTO_PROVISION_VIEWERS="1")
    assert result.returncode != 0 and "needs ALLOWED_EMAIL_DOMAINS" in result.stderr
    allowed = run_manage("check", DEBUG="1", SSO_AUTO_PROVISION_VIEWERS="1", ALLOWED_EMAIL_DOMAINS="example.com")
    assert allowed.returncode == 0, allowed.stderr
