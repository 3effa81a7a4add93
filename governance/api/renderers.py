"""The browsable API, kept to the caller's scope.

DRF's HTML forms list every choice of a related field or filter (``Customer.objects.all()``
and the like), which would name customers, teams, keys and budgets a scoped caller may not
see. Only organisation-wide admins get the forms; everyone else gets the page with the JSON
they are allowed, and no forms."""

from __future__ import annotations

from typing import Any

from rest_framework.renderers import BrowsableAPIRenderer

from governance.api.permissions import request_access


class ScopedBrowsableAPIRenderer(BrowsableAPIRenderer):
    def _admin(self, request: Any) -> bool:
        try:
            return request_access(request).is_admin
        except Exception:  # an unauthenticated or failed request: no forms
            return False

    def show_form_for_method(self, view: Any, method: str, request: Any, obj: Any) -> bool:
        return self._admin(request) and bool(super().show_form_for_method(view, method, request, obj))

    def get_filter_form(self, data: Any, view: Any, request: Any) -> Any:
        return super().get_filter_form(data, view, request) if self._admin(request) else None

    def get_raw_data_form(self, data: Any, view: Any, method: str, request: Any) -> Any:
        return super().get_raw_data_form(data, view, method, request) if self._admin(request) else None
