"""API building blocks shared by the apps: JSON errors that name the field and the reason."""

from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, pagination, serializers, status
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


class CursorPagination(pagination.CursorPagination):
    """DRF's cursor pagination, except that a ``page_size`` outside 1 to ``max_page_size`` (or no number) is a
    400 naming the field, not silently the default; the schema states the bounds."""

    page_size_query_param = "page_size"

    def get_page_size(self, request):
        given = request.query_params.get(self.page_size_query_param)
        if given is None:
            return self.page_size
        try:
            size = int(given)
        except ValueError:
            size = 0
        if not 1 <= size <= self.max_page_size:
            raise exceptions.ValidationError(
                {self.page_size_query_param: [f"an integer from 1 to {self.max_page_size}"]}
            )
        return size

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size, default=self.page_size)
        return parameters


@csrf_exempt  # answers every method: a POST to no route is a JSON 404, not a CSRF failure page
def not_found(request, *args, **kwargs):
    """Any path under the API that names nothing: a JSON 404 like every other API error (not Django's HTML
    page)."""
    return JsonResponse({"detail": "Not found."}, status=status.HTTP_404_NOT_FOUND)
