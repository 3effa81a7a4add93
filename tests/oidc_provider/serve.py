"""Run the test OpenID Connect provider on loopback.

    python tests/oidc_provider/serve.py --port 0

Binds first (``--port 0``: the OS picks a free port, so there is no race), then migrates
a fresh SQLite database, creates one user and one confidential client that skips the
consent screen, and serves with Django's threaded WSGI server. Once it is listening it
prints ``READY http://127.0.0.1:<port>/o`` (the issuer) on stdout. Every option defaults
to an environment variable, so secrets need not appear on the command line.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
SETTINGS_MODULE = "tests.oidc_provider.settings"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=int(env("OIDC_PROVIDER_PORT", "0")))
    parser.add_argument("--db", default=env("OIDC_PROVIDER_DB"), help="SQLite file (default: $OIDC_PROVIDER_DB)")
    parser.add_argument("--username", default=env("OIDC_USER_USERNAME", "sso-user"))
    parser.add_argument("--password", default=env("OIDC_USER_PASSWORD"))
    parser.add_argument("--email", default=env("OIDC_USER_EMAIL", "sso-user@example.com"))
    parser.add_argument("--name", default=env("OIDC_USER_NAME", "SSO Test User"))
    parser.add_argument("--client-id", default=env("OIDC_CLIENT_ID"))
    parser.add_argument("--client-secret", default=env("OIDC_CLIENT_SECRET"))
    parser.add_argument(
        "--redirect-uri",
        action="append",
        default=None,
        help="repeatable (default: whitespace-separated $OIDC_REDIRECT_URIS)",
    )
    args = parser.parse_args(argv)
    if args.redirect_uri is None:
        args.redirect_uri = env("OIDC_REDIRECT_URIS", "").split()
    missing = [
        f"--{name.replace('_', '-')}"
        for name in ("db", "password", "client_id", "client_secret", "redirect_uri")
        if not getattr(args, name)
    ]
    if missing:
        parser.error("missing " + ", ".join(missing))
    return args


def _seed(args: argparse.Namespace) -> None:
    from django.contrib.auth.models import User
    from oauth2_provider.models import Application  # type: ignore[import-untyped]

    first_name, _, last_name = args.name.partition(" ")
    User.objects.create_user(
        username=args.username,
        email=args.email,
        password=args.password,
        first_name=first_name,
        last_name=last_name,
    )
    # client_secret is hashed on save (hash_client_secret=True): the plaintext stays with
    # the relying party, exactly as with a real provider.
    Application.objects.create(
        name="Bursar (SSO end-to-end test)",
        client_id=args.client_id,
        client_secret=args.client_secret,
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=" ".join(args.redirect_uri),
        algorithm=Application.RS256_ALGORITHM,
        skip_authorization=True,
    )


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    # Run by path, sys.path[0] is this directory; import the project as tests.oidc_provider.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    sys.path.insert(0, str(REPO_ROOT))

    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    # Loopback only: the issuer in settings is http://127.0.0.1:<port>/o.
    server = ThreadedWSGIServer(("127.0.0.1", args.port), WSGIRequestHandler, allow_reuse_address=False)
    port = server.server_address[1]
    # The settings read these: the issuer needs the bound port.
    os.environ["OIDC_PROVIDER_PORT"] = str(port)
    os.environ["OIDC_PROVIDER_DB"] = str(args.db)
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE

    import django
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    _seed(args)
    server.set_app(get_wsgi_application())

    from tests.oidc_provider.settings import ISSUER

    sys.stdout.write(f"READY {ISSUER}\n")
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
