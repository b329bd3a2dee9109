"""The tracking API: Segment's HTTP API, so every Segment or RudderStack SDK sends here by changing only its
host and write key.

``POST /v1/{identify,track,page,screen,group,alias}`` take one message, ``POST /v1/batch`` many. The write
key is the HTTP Basic user name (empty password), as the SDKs send it; bodies may be gzip-compressed. Every
answer is JSON; success is 200 (RudderStack's SDKs accept nothing else), with the messages rejected.
"""

import zlib

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp.api import ErrorSerializer, field_error
from cdp.auth import SourcePrincipal
from cdp.parsers import json_loads_strict
from ingestion.models import SourceKey
from ingestion.services import events_receive
from ingestion.tracking import MAX_BATCH_BYTES, MAX_MESSAGE_BYTES, MESSAGE_TYPES

MAX_MESSAGES_PER_BATCH = 2500  # 500 KB of minimal messages; the byte limit binds first in practice


class SourceKeyWithEventsScope(BasePermission):
    """A source's write key (an API key of the source holding ``events:write``); nobody else sends events."""

    message = "This key lacks the events:write scope."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not isinstance(user, SourcePrincipal):
            if user and user.is_authenticated:
                self.message = "Events are sent with a source's write key, not staff credentials."
                return False
            raise NotAuthenticated("Send the source's write key as the HTTP Basic user name.")
        return user.has_scope(SourceKey.Scope.EVENTS_WRITE)


class BodyTooLarge(ValueError):
    pass


def _read_body(request) -> bytes:
    """The request body, decompressed when gzip-encoded, never more than the batch limit (zip bombs)."""
    if int(request.META.get("CONTENT_LENGTH") or 0) > MAX_BATCH_BYTES:
        raise BodyTooLarge
    body = request.body
    if len(body) > MAX_BATCH_BYTES:
        raise BodyTooLarge
    encoding = request.META.get("HTTP_CONTENT_ENCODING", "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise ValueError(f"unsupported Content-Encoding {encoding!r}; send gzip or none")
    decompressor = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected
    try:
        data = decompressor.decompress(body, MAX_BATCH_BYTES + 1)
    except zlib.error as exc:
        raise ValueError(f"body is not valid {encoding}: {exc}") from None
    if len(data) > MAX_BATCH_BYTES or decompressor.unconsumed_tail:
        raise BodyTooLarge
    return data


class TrackingReceiptSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    batch = serializers.UUIDField()
    accepted = serializers.IntegerField()
    rejected = serializers.ListField(child=serializers.DictField())


ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Malformed body, or the single message is invalid."),
    401: OpenApiResponse(ErrorSerializer, description="No or invalid write key."),
    403: OpenApiResponse(ErrorSerializer, description="The key lacks the events:write scope."),
    413: OpenApiResponse(ErrorSerializer, description="Over 500 KB per request or 32 KB per message."),
}

ERROR_CODES = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 413: "payload_too_large"}


class TrackingView(APIView):
    """One message (``message_type`` set) or a batch of them."""

    permission_classes = [SourceKeyWithEventsScope]
    parser_classes = []  # the body is read (and decompressed) by the view itself
    message_type: str | None = None

    def finalize_response(self, request, response, *args, **kwargs):
        # The SDKs read an error's "code" and "message" (RudderStack's fails on a body without them).
        if response.status_code >= 400 and isinstance(response.data, dict):
            response.data.setdefault("code", ERROR_CODES.get(response.status_code, "error"))
            response.data.setdefault("message", str(response.data.get("detail", "")))
        return super().finalize_response(request, response, *args, **kwargs)

    @extend_schema(
        request={"application/json": dict},
        responses={200: TrackingReceiptSerializer, **ERRORS},
        summary="Send tracking messages (Segment Spec)",
        description="Messages are stored as received and processed into profiles and timelines in the "
        "background. Deduplicated by messageId per source. In a batch, valid messages are accepted even "
        "when others are not; the rejected ones are listed and kept in the quarantine. Consent: "
        "context.consent.categoryPreferences (Segment's consent object) is recorded in the consent ledger "
        "when it changes, and a request with the header Sec-GPC: 1 records an opt-out of sale/sharing for "
        "the sender (a later request without it does not undo it).",
    )
    def post(self, request):
        source = request.user.source
        try:
            document = json_loads_strict(_read_body(request))
        except BodyTooLarge:
            return field_error(
                "", f"Request body over {MAX_BATCH_BYTES // 1024} KB; send smaller batches.", 413
            )
        except (ValueError, UnicodeDecodeError) as exc:
            return field_error("", f"Body is not valid JSON: {exc}")
        if not isinstance(document, dict):
            return field_error("", "The body must be a JSON object.")
        sent_at = None
        if self.message_type is None:
            messages = document.get("batch")
            if not isinstance(messages, list) or not messages:
                return field_error("batch", 'Must be a non-empty list: {"batch": [...]}.')
            if len(messages) > MAX_MESSAGES_PER_BATCH:
                return field_error("batch", f"At most {MAX_MESSAGES_PER_BATCH} messages per request.", 413)
            sent_at = document.get("sentAt")
        else:
            messages = [{**document, "type": document.get("type", self.message_type)}]
        # Global Privacy Control: browsers with it on send "Sec-GPC: 1" on every request, ours included.
        gpc = request.META.get("HTTP_SEC_GPC", "").strip() == "1"
        receipt = events_receive(source=source, messages=messages, sent_at=sent_at, gpc=gpc)
        rejected = [vars(r) for r in receipt.rejections]
        if self.message_type is not None and rejected:
            status = 413 if rejected[0]["reason"].startswith("message over") else 400
            reason = rejected[0]["reason"]
            body = {"detail": reason, "errors": [{"field": rejected[0]["field"], "reason": reason}]}
            return Response({**body, "batch": str(receipt.batch.pk)}, status=status)
        return Response(
            {
                "success": True,
                "batch": str(receipt.batch.pk),
                "accepted": receipt.accepted,
                "rejected": rejected,
            }
        )


def tracking_urls():
    from django.urls import path

    views = [path("batch", TrackingView.as_view(), name="tracking-batch")]
    for message_type in MESSAGE_TYPES:
        view = TrackingView.as_view(message_type=message_type)
        views.append(path(message_type, view, name=f"tracking-{message_type}"))
    return views


__all__ = ["MAX_MESSAGE_BYTES", "TrackingView", "tracking_urls"]
