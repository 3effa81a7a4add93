"""A minimal, real OpenID Connect provider (django-oauth-toolkit) for end-to-end SSO tests.

It is a second, self-contained Django project: it never shares settings, database or
process with Bursar. Start it with ``tests.oidc_harness.run_oidc_provider``.
"""
