"""What comes in: the systems that send data, their credentials, and every payload exactly as received."""

import uuid

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from cdp.fields import JSONField
from cdp.models import HashedKey


def validate_region(value: str) -> None:
    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise ValidationError(f"{value!r} is not a country code known for phone numbers (e.g. US, GB, DE).")


class Source(models.Model):
    """A system that sends customer data (CRM, ERP, web shop, ...)."""

    class Kind(models.TextChoices):
        CRM = "crm", "CRM"
        ERP = "erp", "ERP"
        WEB = "web", "Web / app"
        SOCIAL = "social", "Social media"
        SUPPORT = "support", "Support"
        SURVEY = "survey", "Survey"
        OTHER = "other", "Other"

    slug = models.SlugField(max_length=50, unique=True, validators=[RegexValidator(r"^[a-z][a-z0-9_-]*$")])
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.OTHER)
    trust_rank = models.PositiveSmallIntegerField(
        default=50, help_text="Survivorship: a value from a source with a higher rank wins (0-1000)."
    )
    default_region = models.CharField(
        max_length=2,
        default="US",
        validators=[validate_region],
        help_text="ISO country code used to read phone numbers written without a country code.",
    )
    field_mapping = JSONField(
        default=dict,
        blank=True,
        help_text='Source field name -> canonical attribute, e.g. {"FirstName": "first_name"}.',
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name or self.slug


class SourceKey(HashedKey):
    """An API key of one source; also its Segment-style write key. Writes only its own source's data."""

    class Scope(models.TextChoices):
        RECORDS_WRITE = "records:write", "Write records"
        EVENTS_WRITE = "events:write", "Write events"
        PROFILES_READ = "profiles:read", "Read profiles"
        CONSENTS_WRITE = "consents:write", "Write consents"
        CONSENTS_READ = "consents:read", "Check consents"

    DEFAULT_SCOPES = [Scope.RECORDS_WRITE.value, Scope.EVENTS_WRITE.value]
    KIND = "sk"

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="keys")
    scopes = JSONField(default=list, blank=True)

    def __str__(self) -> str:
        return f"source key {self.prefix}…"


class IdentifierType(models.Model):
    """A kind of identifier sources may send, and the rules for matching people on it.

    Every source's own external id is an identifier type named after the source, so another source can
    reference it (an ERP order carrying ``{"crm": "C-1001"}``) and support can look people up by it.
    """

    class Normaliser(models.TextChoices):
        EMAIL = "email", "Email address"
        PHONE = "phone", "Phone number (E.164)"
        TEXT = "text", "Text, trimmed"
        CASEFOLD = "casefold", "Text, trimmed and case-insensitive"

    name = models.SlugField(max_length=50, unique=True)
    normaliser = models.CharField(max_length=20, choices=Normaliser.choices, default=Normaliser.TEXT)
    max_per_profile = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="At most this many distinct values on one profile; a merge that would exceed it is not "
        "made and goes to review. Empty: no limit.",
    )
    blocked_values = JSONField(
        default=list,
        blank=True,
        help_text="Values never used to link people (shared or test values), e.g. test@example.com.",
    )
    source = models.OneToOneField(
        Source,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="identifier_type",
        help_text="Set when this type is the external id of a source.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name = "identifier rule"

    def __str__(self) -> str:
        return self.name


class Batch(models.Model):
    """One request of a source system, as received."""

    class Kind(models.TextChoices):
        RECORDS = "records", "Records"
        DELETE = "delete", "Record deletion"
        EVENTS = "events", "Tracking events"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="batches")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.RECORDS)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    received_count = models.PositiveIntegerField(default=0)
    rejected_count = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name_plural = "batches"
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.source.slug} {self.kind} {self.received_at:%Y-%m-%d %H:%M:%S}"


class InboundRecord(models.Model):
    """One record exactly as a source sent it, kept before anything else happens to it.

    Processing may fail (a bug, a rule that rejects it); the record then waits in the quarantine with the
    reason and is replayed by ``manage.py reprocess``. Nothing accepted is ever dropped.
    """

    class Operation(models.TextChoices):
        UPSERT = "upsert", "Create or update"
        DELETE = "delete", "Delete"
        EVENT = "event", "Tracking event"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSED = "processed", "Processed"
        QUARANTINED = "quarantined", "Quarantined"

    class Stage(models.TextChoices):
        VALIDATION = "validation", "Validation"
        PROCESSING = "processing", "Processing"

    # Indexed by ("batch", "status") below, which serves lookups by batch alone too.
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="records", db_index=False)
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="inbound_records")
    index = models.PositiveIntegerField(help_text="Position in the request.")
    operation = models.CharField(max_length=10, choices=Operation.choices, default=Operation.UPSERT)
    external_id = models.CharField(max_length=255, blank=True)
    payload = JSONField(null=True, help_text="The record exactly as received.")
    normalised = JSONField(
        null=True,
        blank=True,
        help_text="The record as intake normalised it, with the fingerprint of the rules used: processing "
        "takes it as it is while those rules are unchanged (ingestion.normalise.record_load). Cleared once "
        "processed.",
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    outcome = models.CharField(max_length=20, blank=True, help_text="What processing did with it.")
    error_stage = models.CharField(max_length=20, choices=Stage.choices, blank=True)
    error_field = models.CharField(max_length=200, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["batch", "index"]
        indexes = [
            models.Index(fields=["batch", "status"], name="inbound_batch_status"),
            models.Index(
                fields=["status", "source"],
                name="inbound_open",
                condition=~models.Q(status="processed"),
            ),
        ]

    def __str__(self) -> str:
        return f"record {self.index} of batch {self.batch_id} ({self.status})"
