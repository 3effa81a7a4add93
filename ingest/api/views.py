"""Ingest endpoints (``api.md``): gateway nodes POST batches with their ``bsn_`` token."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound, ParseError, UnsupportedMediaType
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bursar.gcpause import gc_paused
from governance.api.authentication import GatewayNodeAuthentication
from governance.api.permissions import IsGatewayNode
from governance.models import GatewayNode
from ingest.formats import ParsedBody, UnreadableBody
from ingest.formats.litellm import parse_litellm
from ingest.formats.native import parse_native
from ingest.formats.otlp import parse_otlp
from ingest.models import BatchFormat
from ingest.selectors import count_pending_batches, get_batch_for_node
from ingest.services import accept_batch


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


class Overloaded(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "overloaded"
    wait = 5  # DRF's exception handler turns this into Retry-After


class AcceptanceSerializer(serializers.Serializer[Any]):
    batch_id = serializers.UUIDField(allow_null=True)
    accepted = serializers.IntegerField()
    rejected = serializers.ListField(child=serializers.DictField())
    ignored = serializers.IntegerField()


def read_body(request: Request) -> bytes:
    """The request body, gunzipped, within the configured limits (413 past them)."""
    limit = settings.INGEST_MAX_BODY_BYTES
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body is larger than {limit} bytes; send smaller batches")
    body = request._request.read(limit + 1)
    if len(body) > limit:
        raise PayloadTooLarge(f"body is larger than {limit} bytes; send smaller batches")
    encoding = request.META.get("HTTP_CONTENT_ENCODING", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise UnsupportedMediaType(encoding, detail=f"Content-Encoding {encoding!r} is not supported; use gzip")
    maximum = settings.INGEST_MAX_DECOMPRESSED_BYTES
    chunks: list[bytes] = []
    size = 0
    remaining = body
    while remaining:  # a gzip body may hold several members (concatenated .gz files)
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            data = inflater.decompress(remaining, maximum + 1 - size)
        except zlib.error as error:
            raise ParseError(f"body is not valid gzip: {error}") from None
        size += len(data)
        if size > maximum or inflater.unconsumed_tail:
            raise PayloadTooLarge(f"body inflates past {maximum} bytes; send smaller batches")
        if not inflater.eof:
            raise ParseError("gzip body is truncated")
        chunks.append(data)
        remaining = inflater.unused_data
    return b"".join(chunks)


def _media_type(request: Request) -> str:
    return (request.content_type or "").split(";")[0].strip().lower()


_pending_cache: dict[str, float] = {"at": 0.0, "count": 0.0}


def _refuse_when_overloaded() -> None:
    """503 + Retry-After while the backlog is past its limit (checked at most once a second)."""
    now = time.monotonic()
    if now - _pending_cache["at"] > 1.0:
        _pending_cache.update(at=now, count=float(count_pending_batches()))
    if _pending_cache["count"] >= settings.INGEST_MAX_PENDING_BATCHES:
        raise Overloaded("ingest backlog is full; retry shortly")


class IngestView(APIView):
    authentication_classes = [GatewayNodeAuthentication]
    permission_classes = [IsGatewayNode]
    format_name: str
    parse: Callable[[bytes, str], ParsedBody]

    @extend_schema(request=None, responses={202: AcceptanceSerializer, 400: OpenApiResponse(), 413: OpenApiResponse()})
    def post(self, request: Request) -> Response:
        with gc_paused():  # a body of 1,000 events is a burst of short-lived objects
            return self._accept(request)

    def _accept(self, request: Request) -> Response:
        _refuse_when_overloaded()
        body = read_body(request)
        try:
            parsed = self.parse(body, _media_type(request))
        except UnreadableBody as error:
            raise ParseError(str(error)) from None
        if max(len(parsed.items), parsed.validated_count) > settings.INGEST_MAX_EVENTS_PER_BATCH:
            raise PayloadTooLarge(f"more than {settings.INGEST_MAX_EVENTS_PER_BATCH} events in one body")
        assert isinstance(request.auth, GatewayNode)
        acceptance = accept_batch(node=request.auth, format=self.format_name, parsed=parsed, now=timezone.now())
        data = {
            "batch_id": acceptance.batch_id,
            "accepted": acceptance.accepted,
            "rejected": acceptance.rejected,
            "ignored": acceptance.ignored,
        }
        if acceptance.accepted == 0 and acceptance.rejected:
            return Response(data, status=status.HTTP_400_BAD_REQUEST)
        return Response(AcceptanceSerializer(data).data, status=status.HTTP_202_ACCEPTED)


def _require(media_type: str, allowed: tuple[str, ...]) -> None:
    if media_type not in allowed:
        raise UnsupportedMediaType(media_type, detail=f"Content-Type must be one of {', '.join(allowed)}")


def _parse_native(body: bytes, media_type: str) -> ParsedBody:
    _require(media_type, ("application/json", "application/x-ndjson", "application/jsonl"))
    return parse_native(body, ndjson=media_type != "application/json")


def _parse_litellm(body: bytes, media_type: str) -> ParsedBody:
    _require(media_type, ("application/json", "application/x-ndjson", "application/jsonl", "text/plain"))
    return parse_litellm(body, ndjson=media_type != "application/json")


def _parse_otlp(body: bytes, media_type: str) -> ParsedBody:
    _require(media_type, ("application/x-protobuf", "application/json"))
    return parse_otlp(body, is_json=media_type == "application/json")


class NativeEventsView(IngestView):
    format_name = BatchFormat.NATIVE
    parse = staticmethod(_parse_native)


class LiteLLMView(IngestView):
    format_name = BatchFormat.LITELLM
    parse = staticmethod(_parse_litellm)


class OtlpTracesView(IngestView):
    format_name = BatchFormat.OTLP
    parse = staticmethod(_parse_otlp)


class BatchStatusSerializer(serializers.Serializer[Any]):
    batch_id = serializers.UUIDField(source="id")
    state = serializers.CharField()
    format = serializers.CharField()
    received_at = serializers.DateTimeField()
    processed_at = serializers.DateTimeField(allow_null=True)
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    inserted = serializers.IntegerField(allow_null=True)
    duplicates = serializers.IntegerField(allow_null=True)
    unpriced = serializers.IntegerField(allow_null=True)
    attempts = serializers.IntegerField()
    last_error = serializers.CharField()


class BatchStatusView(APIView):
    authentication_classes = [GatewayNodeAuthentication]
    permission_classes = [IsGatewayNode]

    @extend_schema(responses=BatchStatusSerializer)
    def get(self, request: Request, batch_id: str) -> Response:
        assert isinstance(request.auth, GatewayNode)
        batch = get_batch_for_node(batch_id=batch_id, node_id=request.auth.pk)
        if batch is None:
            raise NotFound("no batch with this id was sent by this node")
        return Response(BatchStatusSerializer(batch).data)
