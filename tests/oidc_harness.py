"""Start the real OpenID Connect provider in ``tests/oidc_provider`` as a separate process.

    with run_oidc_provider(redirect_uri=callback, email=..., username=..., password=...) as idp:
        settings.SOCIALACCOUNT_PROVIDERS = {"openid_connect": {"APPS": [idp.allauth_app()]}}
        ...

The provider (django-oauth-toolkit with OIDC) has its own settings and a throwaway SQLite
database; Bursar's environment (DATABASE_URL, DJANGO_SETTINGS_MODULE, ...) is not passed on.
It listens on 127.0.0.1 on a port the OS picks; its issuer is ``http://127.0.0.1:<port>/o``.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SERVE = Path(__file__).resolve().parent / "oidc_provider" / "serve.py"
REPO_ROOT = SERVE.parents[2]
# Only what a Python process needs; nothing of Bursar's configuration.
_PASSTHROUGH_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ", "SYSTEMROOT")


@dataclass(frozen=True)
class OidcProvider:
    issuer: str  # http://127.0.0.1:<port>/o, exactly the ``iss`` of its ID tokens
    client_id: str
    client_secret: str  # plaintext; the provider stores only a hash
    redirect_uri: str
    username: str
    password: str
    email: str
    name: str
    pkce_required: bool

    @property
    def server_url(self) -> str:
        """What allauth's ``settings.server_url`` wants: it appends the well-known path."""
        return self.issuer

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def allauth_app(self, provider_id: str = "test-sso", name: str = "Test SSO") -> dict[str, Any]:
        """An entry for ``SOCIALACCOUNT_PROVIDERS["openid_connect"]["APPS"]``.

        The callback is then ``/accounts/oidc/<provider_id>/login/callback/``.
        """
        return {
            "provider_id": provider_id,
            "name": name,
            "client_id": self.client_id,
            "secret": self.client_secret,
            "settings": {"server_url": self.server_url, "oauth_pkce_enabled": self.pkce_required},
        }


def _wait_ready(proc: subprocess.Popen[bytes], stdout: Path, stderr: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        for line in stdout.read_text(errors="replace").splitlines():
            if line.startswith("READY "):
                return line.removeprefix("READY ").strip()
        if proc.poll() is not None:
            raise RuntimeError(
                f"OIDC provider exited with status {proc.returncode} before it was ready; stderr:\n"
                + stderr.read_text(errors="replace")
            )
        if time.monotonic() > deadline:
            _stop(proc)
            raise RuntimeError(
                f"OIDC provider not ready after {timeout:.0f} s; stderr:\n" + stderr.read_text(errors="replace")
            )
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def run_oidc_provider(
    *,
    redirect_uri: str,
    email: str,
    username: str,
    password: str,
    name: str = "SSO Test User",
    pkce_required: bool = True,
    timeout: float = 30.0,
) -> Iterator[OidcProvider]:
    """Run the provider for the duration of the block, with one user and one confidential
    client (authorization-code grant, RS256 ID tokens, consent skipped) for ``redirect_uri``.

    ``pkce_required``: the provider rejects authorization requests without a PKCE challenge;
    allauth sends one only with ``"oauth_pkce_enabled": True`` (``allauth_app()`` sets it).
    """
    client_id = f"bursar-{secrets.token_hex(8)}"
    client_secret = secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="oidc-provider-") as tmp:
        workdir = Path(tmp)
        env = {key: value for key in _PASSTHROUGH_ENV if (value := os.environ.get(key)) is not None}
        env.update(
            PYTHONUNBUFFERED="1",
            OIDC_PROVIDER_DB=str(workdir / "provider.sqlite3"),
            OIDC_USER_USERNAME=username,
            OIDC_USER_PASSWORD=password,
            OIDC_USER_EMAIL=email,
            OIDC_USER_NAME=name,
            OIDC_CLIENT_ID=client_id,
            OIDC_CLIENT_SECRET=client_secret,
            OIDC_REDIRECT_URIS=redirect_uri,
            OIDC_PKCE_REQUIRED="1" if pkce_required else "0",
        )
        stdout, stderr = workdir / "stdout.log", workdir / "stderr.log"
        # Files, not pipes: nobody has to keep draining them while the test runs.
        with stdout.open("wb") as out, stderr.open("wb") as err:
            proc = subprocess.Popen(
                [sys.executable, str(SERVE), "--port", "0"],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        try:
            issuer = _wait_ready(proc, stdout, stderr, timeout)
            yield OidcProvider(
                issuer=issuer,
                client_id=client_id,
                client_secret=client_secret,
                redirect_uri=redirect_uri,
                username=username,
                password=password,
                email=email,
                name=name,
                pkce_required=pkce_required,
            )
        finally:
            _stop(proc)
