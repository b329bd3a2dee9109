"""API building blocks shared by the apps: JSON errors that name the field and the reason."""

from django.core.exceptions import RequestDataTooBig
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def _flatten(detail, prefix: str = "") -> list[dict]:
    if isinstance(detail, dict):
        return [
            e
            for key, value in detail.items()
            for e in _flatten(value, f"{prefix}.{key}" if prefix else str(key))
        ]
    if isinstance(detail, list):
        if all(not isinstance(v, dict | list) for v in detail):
            return [{"field": prefix or "non_field_errors", "reason": str(v)} for v in detail]
        return [e for i, value in enumerate(detail) for e in _flatten(value, f"{prefix}[{i}]")]
    return [{"field": prefix or "non_field_errors", "reason": str(detail)}]


def exception_handler(exc, context):
    """DRF's handler, with validation errors as ``{"detail", "errors": [{"field", "reason"}]}`` and 413 for
    bodies over the limit."""
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"detail": "Request body too large."}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
        )
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.ValidationError):
        response.data = {"detail": "Invalid input.", "errors": _flatten(exc.detail)}
    return response


def field_error(field: str, reason: str, status_code: int = status.HTTP_400_BAD_REQUEST) -> Response:
    return Response({"detail": reason, "errors": [{"field": field, "reason": reason}]}, status=status_code)


class FieldErrorSerializer(serializers.Serializer):
    field = serializers.CharField()
    reason = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    """The shape of every 4xx answer."""

    detail = serializers.CharField()
    errors = FieldErrorSerializer(many=True, required=False)
