from django.apps import AppConfig


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"

    def ready(self) -> None:
        # Importing DRF views from settings.py would freeze DRF's defaults before
        # REST_FRAMEWORK is read, so its generics are made subscriptable here.
        import django_stubs_ext
        from rest_framework.generics import GenericAPIView
        from rest_framework.serializers import BaseSerializer

        django_stubs_ext.monkeypatch(extra_classes=[GenericAPIView, BaseSerializer])

        from governance.services.config import on_desired_state_changed
        from governance.signals import desired_state_changed

        desired_state_changed.connect(on_desired_state_changed, dispatch_uid="governance.config_push")

        from governance import account_audit

        account_audit.connect()
