from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from cdp.api import ErrorSerializer, field_error
from cdp.auth import SourcePrincipal
from cdp.parsers import text_problem
from cdp.permissions import StaffOrSourceScope
from ingestion.models import Batch, Source, SourceKey
from ingestion.normalise import MAX_EXTERNAL_ID_LENGTH
from ingestion.selectors import batch_status
from ingestion.services import MAX_RECORDS_PER_REQUEST, record_delete_receive, records_receive

from .serializers import BatchSerializer, ReceiptSerializer, RecordsInSerializer

MAX_BODY_BYTES = 5 * 1024 * 1024
ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Malformed JSON or envelope; names the field."),
    401: OpenApiResponse(ErrorSerializer, description="No or invalid credentials."),
    403: OpenApiResponse(ErrorSerializer, description="The key may not write this source."),
    404: OpenApiResponse(ErrorSerializer, description="Unknown source."),
    413: OpenApiResponse(ErrorSerializer, description="Over 1,000 records or 5 MB."),
}


def _writable_source(request, slug: str) -> Source:
    source = get_object_or_404(Source, slug=slug)
    user = request.user
    if isinstance(user, SourcePrincipal) and user.source.pk != source.pk:
        from rest_framework.exceptions import PermissionDenied

        raise PermissionDenied(f"This key belongs to source {user.source.slug!r} and cannot write {slug!r}.")
    return source


class SourceRecordsView(APIView):
    """Create or update records of one source (partial acceptance: valid records are kept)."""

    permission_classes = [StaffOrSourceScope]
    required_scope = SourceKey.Scope.RECORDS_WRITE

    @extend_schema(
        request=RecordsInSerializer,
        responses={202: ReceiptSerializer, **ERRORS},
        summary="Send records",
        description="Stores every record durably, then resolves them to profiles in the background. "
        "Idempotent: the same record sent twice changes nothing; an older updated_at never overwrites.",
    )
    def post(self, request, slug: str):
        source = _writable_source(request, slug)
        if int(request.META.get("CONTENT_LENGTH") or 0) > MAX_BODY_BYTES:
            return field_error("", "Request body over 5 MB; split it into smaller batches.", 413)
        data = request.data
        if not isinstance(data, dict) or "records" not in data:
            return field_error("records", 'The body must be a JSON object {"records": [...]}.')
        unknown = sorted(set(data) - {"records"})
        if unknown:
            return field_error(unknown[0], 'Unknown field; the body is {"records": [...]}.')
        records = data["records"]
        if not isinstance(records, list):
            return field_error("records", "Must be a list of records.")
        if not records:
            return field_error("records", "Must hold at least one record.")
        if len(records) > MAX_RECORDS_PER_REQUEST:
            return field_error(
                "records", f"{len(records)} records; at most {MAX_RECORDS_PER_REQUEST} per request.", 413
            )
        receipt = records_receive(source=source, records=records)
        body = {
            "batch": str(receipt.batch.pk),
            "accepted": receipt.accepted,
            "rejected": [vars(r) for r in receipt.rejections],
            "status_url": request.build_absolute_uri(f"/api/v1/batches/{receipt.batch.pk}"),
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)


class SourceRecordView(APIView):
    permission_classes = [StaffOrSourceScope]
    required_scope = SourceKey.Scope.RECORDS_WRITE

    @extend_schema(
        request=None,
        responses={202: ReceiptSerializer, **ERRORS},
        summary="Delete a record",
        description="The source deleted this record: the profile loses what only this record gave it.",
    )
    def delete(self, request, slug: str, external_id: str):
        source = _writable_source(request, slug)
        external_id = external_id.strip()
        if not external_id or len(external_id) > MAX_EXTERNAL_ID_LENGTH or text_problem(external_id):
            return field_error("external_id", f"must be 1 to {MAX_EXTERNAL_ID_LENGTH} characters of text")
        batch = record_delete_receive(source=source, external_id=external_id)
        body = {
            "batch": str(batch.pk),
            "accepted": 1,
            "rejected": [],
            "status_url": request.build_absolute_uri(f"/api/v1/batches/{batch.pk}"),
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)


class BatchView(APIView):
    """Progress of one request: how many records were accepted, processed, quarantined, and why."""

    permission_classes = [StaffOrSourceScope]
    required_scope = SourceKey.Scope.RECORDS_WRITE

    @extend_schema(
        responses={200: BatchSerializer, 401: ERRORS[401], 404: ERRORS[404]}, summary="Batch status"
    )
    def get(self, request, batch_id):
        batch = get_object_or_404(Batch.objects.select_related("source"), pk=batch_id)
        user = request.user
        if isinstance(user, SourcePrincipal) and user.source.pk != batch.source_id:
            return field_error("batch", "Not found.", 404)
        return Response(batch_status(batch))
