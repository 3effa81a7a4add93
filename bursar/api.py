"""Project-wide DRF plumbing: pagination, the one exception handler, CSV rendering."""

from __future__ import annotations

import csv
import io
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError
from django.http import HttpRequest, JsonResponse
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.pagination import PageNumberPagination
from rest_framework.renderers import BaseRenderer
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from bursar.errors import DomainError


class JSONParser(parsers.JSONParser):
    """DRF's parser, plus: nesting deep enough to exhaust the stack is bad input (400),
    not a server error."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 1000


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        return Response(exc.as_dict(), status=exc.status_code)
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": "request body is too large", "code": "too_large"}, status=413)
    if isinstance(exc, DjangoValidationError):
        # A model's full_clean() inside a service: report it like a serializer would.
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        return Response(detail, status=400)
    if isinstance(exc, ProtectedError):
        names = sorted({str(obj._meta.verbose_name_plural) for obj in exc.protected_objects})
        return Response(
            {
                "detail": f"still referenced by {', '.join(names)}; remove those first",
                "code": "conflict",
            },
            status=409,
        )
    return drf_exception_handler(exc, context)


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)


def json_server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"detail": "Internal server error.", "code": "server_error"}, status=500)


class CSVRenderer(BaseRenderer):
    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        rows = data if isinstance(data, list) else [data]
        if not rows:
            return b""
        buffer = io.StringIO()
        columns = list(rows[0].keys()) if isinstance(rows[0], dict) else ["detail"]
        writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row if isinstance(row, dict) else {"detail": row})
        return buffer.getvalue().encode()
