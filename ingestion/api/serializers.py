"""Shapes of the records API, for validation of the envelope and for the OpenAPI schema."""

from rest_framework import serializers

from ingestion.services import MAX_RECORDS_PER_REQUEST


class RecordInSerializer(serializers.Serializer):
    external_id = serializers.CharField(max_length=255, help_text="The record's id in the source system.")
    updated_at = serializers.DateTimeField(
        required=False,
        help_text="The source's own change time; an older version never overwrites a newer one.",
    )
    attributes = serializers.DictField(
        required=False,
        help_text="first_name, last_name, birth_date (YYYY-MM-DD), email, phone, address_line1, address_line2, "
        "city, postcode, region, country, company, job_title, national_id, ... and any custom attribute (kept).",
    )
    identifiers = serializers.DictField(
        required=False,
        help_text='Extra identifiers by declared type, one value or a list: {"email": ["a@x.com"], '
        '"loyalty_id": "L-1", "crm": "C-1001"}.',
    )
    consents = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text="Consent statements of the person, as in POST /api/v1/consents (purpose, channel, decision, "
        "effective_at, legal_basis, notice_version, ...). identifier defaults to the record's own id; an "
        "explicit one must be one of the record's identifiers. effective_at defaults to updated_at (one of "
        "them is required); capture_method defaults to import. Validated at intake (an invalid one rejects "
        "the record: field consents[i].<field>), written to the consent ledger when the record is processed; "
        "sending the record again records nothing twice.",
    )


class RecordsInSerializer(serializers.Serializer):
    records = serializers.ListField(
        child=serializers.JSONField(),
        max_length=MAX_RECORDS_PER_REQUEST,
        help_text=f"Up to {MAX_RECORDS_PER_REQUEST} records (RecordIn); the body may be up to 5 MB.",
    )


class RejectionSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    external_id = serializers.CharField()
    field = serializers.CharField()
    reason = serializers.CharField()


class ReceiptSerializer(serializers.Serializer):
    batch = serializers.UUIDField()
    accepted = serializers.IntegerField()
    rejected = RejectionSerializer(many=True)
    status_url = serializers.CharField()


class BatchErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    external_id = serializers.CharField()
    stage = serializers.CharField()
    field = serializers.CharField()
    reason = serializers.CharField()


class BatchCountsSerializer(serializers.Serializer):
    received = serializers.IntegerField()
    accepted = serializers.IntegerField()
    rejected = serializers.IntegerField()
    pending = serializers.IntegerField()
    processed = serializers.IntegerField()
    quarantined = serializers.IntegerField()


class BatchSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    source = serializers.CharField()
    kind = serializers.CharField()
    received_at = serializers.DateTimeField()
    complete = serializers.BooleanField(help_text="No record of the batch is waiting to be processed.")
    counts = BatchCountsSerializer()
    outcomes = serializers.DictField(child=serializers.IntegerField())
    errors = BatchErrorSerializer(many=True)
