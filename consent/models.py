"""What people agreed to, with proof: purposes, channels, notice versions and the append-only consent ledger.

Effective consent is not stored: it is derived from the ledger at read time (``consent.rules``), from the
entries of every identifier a profile holds and of its own and merged-away ids. So it follows merges without a
refresh step, and the ledger stays the one source of truth a privacy officer can audit.
"""

import hashlib
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from cdp.fields import JSONField
from ingestion.models import Source

from . import rules


class Purpose(models.Model):
    """Why personal data is used (marketing, analytics, ...), and whether that needs the person's consent."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    requires_consent = models.BooleanField(
        default=True,
        help_text="Allowed only with a valid, unexpired grant (fail closed). Otherwise allowed unless the "
        "person denied, withdrew, objected or opted out.",
    )
    direct_marketing = models.BooleanField(
        default=False, help_text="Blocked on every channel by an objection to direct marketing."
    )
    sale_sharing = models.BooleanField(
        default=False, help_text="Blocked on every channel by an opt-out of sale/sharing (CCPA, GPC)."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name or self.slug

    def as_rule(self) -> rules.PurposeRule:
        return rules.PurposeRule(
            slug=self.slug,
            requires_consent=self.requires_consent,
            direct_marketing=self.direct_marketing,
            sale_sharing=self.sale_sharing,
        )


class Channel(models.Model):
    """How a person is reached (email, sms, phone, post, push, web)."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.name or self.slug


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class NoticeVersion(models.Model):
    """The exact text a person was shown when asked. Evidence: its text never changes once recorded; a new
    wording is a new version. The hash lets anyone check that the text was not altered later."""

    notice = models.SlugField(max_length=100, help_text="Which notice, e.g. newsletter-signup.")
    version = models.CharField(max_length=50)
    language = models.CharField(max_length=16, help_text="BCP 47 language tag, e.g. en, de-CH.")
    text = models.TextField()
    text_sha256 = models.CharField(max_length=64, editable=False)
    published_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["notice", "-published_at"]
        constraints = [
            models.UniqueConstraint(fields=["notice", "version", "language"], name="notice_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.notice} v{self.version} ({self.language})"

    def clean(self) -> None:
        if not self.text or not self.text.strip():
            raise ValidationError({"text": "The text shown to the person is required."})
        self.text_sha256 = text_hash(self.text)


class ConsentEntryQuerySet(models.QuerySet):
    """The ledger is append-only: bulk updates and deletes are refused here as well as by the database."""

    def update(self, **kwargs):
        raise LedgerImmutable("Consent ledger entries are never changed; record a new entry instead.")

    def delete(self):
        raise LedgerImmutable("Consent ledger entries are never deleted; record a withdrawal instead.")

    def erase(self) -> int:
        """The one way rows leave the ledger: an executed erasure request (``consent.services.erasure``).

        On PostgreSQL the trigger lets a DELETE through only inside a transaction that set
        ``cdp.erasure = 'on'`` with SET LOCAL (it ends with the transaction)."""
        from django.db import connection, transaction

        if not transaction.get_connection(self.db).in_atomic_block:
            raise LedgerImmutable("Ledger entries are erased only inside the erasure transaction.")
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL cdp.erasure = 'on'")
        deleted, _ = models.QuerySet.delete(self)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL cdp.erasure = 'off'")
        return deleted


class LedgerImmutable(Exception):
    pass


class ConsentEntry(models.Model):
    """One statement of a person about one purpose (and channel), with its proof. Append-only.

    Given for an identifier (type + value normalised like identities, so it joins whatever profile holds that
    identifier, now or later) or for a profile id (staff or an agent recording it on the person).
    """

    class Decision(models.TextChoices):
        GRANTED = rules.GRANTED, "Granted"
        DENIED = rules.DENIED, "Denied"
        WITHDRAWN = rules.WITHDRAWN, "Withdrawn"
        OBJECTION = rules.OBJECTION, "Objection to direct marketing"
        OPT_OUT_SALE = rules.OPT_OUT_SALE, "Opt-out of sale/sharing"

    class LegalBasis(models.TextChoices):
        CONSENT = "consent", "Consent (GDPR 6(1)(a))"
        CONTRACT = "contract", "Contract (6(1)(b))"
        LEGAL_OBLIGATION = "legal_obligation", "Legal obligation (6(1)(c))"
        VITAL_INTERESTS = "vital_interests", "Vital interests (6(1)(d))"
        PUBLIC_TASK = "public_task", "Public task (6(1)(e))"
        LEGITIMATE_INTERESTS = "legitimate_interests", "Legitimate interests (6(1)(f))"

    class CaptureMethod(models.TextChoices):
        FORM = "form", "Form"
        DOUBLE_OPT_IN = "double_opt_in", "Double opt-in confirmation"
        IMPORT = "import", "Import"
        AGENT = "agent", "Agent"
        GPC = "gpc", "Global Privacy Control signal"
        TCF = "tcf", "IAB TCF string"
        TRACKED = "tracked", "Preference on tracked events (consent manager)"
        SYSTEM = "system", "System (copied on a profile split)"

    identifier_type = models.CharField(max_length=50, blank=True)
    identifier_value = models.CharField(max_length=320, blank=True)
    subject_profile_id = models.UUIDField(
        null=True,
        blank=True,
        help_text="Set when the statement was recorded on a profile rather than for an identifier. Not a "
        "foreign key: the ledger outlives merges and splits of profiles.",
    )
    recorded_for_profile_id = models.UUIDField(
        null=True,
        blank=True,
        editable=False,
        help_text="The profile the identifier belonged to when the entry was recorded: the statement keeps "
        "reaching that person (and whoever it is merged into) even after a source drops the identifier.",
    )
    purpose = models.ForeignKey(Purpose, on_delete=models.PROTECT, to_field="slug", related_name="entries")
    channel = models.ForeignKey(
        Channel,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        to_field="slug",
        related_name="entries",
        help_text="Empty: every channel.",
    )
    decision = models.CharField(max_length=40, choices=Decision.choices)
    legal_basis = models.CharField(max_length=30, choices=LegalBasis.choices, blank=True)
    notice_version = models.ForeignKey(
        NoticeVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="entries"
    )
    capture_method = models.CharField(max_length=20, choices=CaptureMethod.choices)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.TextField(blank=True)
    source = models.ForeignKey(
        Source, null=True, blank=True, on_delete=models.PROTECT, related_name="consent_entries"
    )
    recorded_by = models.CharField(max_length=150, help_text="Who sent it: source:<slug> or staff:<user>.")
    effective_at = models.DateTimeField(help_text="When the person made the statement.")
    recorded_at = models.DateTimeField(default=timezone.now, help_text="When the ledger received it.")
    expires_at = models.DateTimeField(null=True, blank=True)
    evidence = JSONField(default=dict, blank=True)
    idempotency_key = models.CharField(max_length=200, blank=True)
    dedupe_key = models.CharField(
        max_length=64,
        unique=True,
        help_text="The caller and its idempotency key, or (without a key) the entry's content: the same entry "
        "sent twice is stored once.",
    )
    content_hash = models.CharField(max_length=64)

    objects = ConsentEntryQuerySet.as_manager()

    class Meta:
        verbose_name = "consent ledger entry"
        verbose_name_plural = "consent ledger"
        ordering = ["-recorded_at", "-id"]
        indexes = [
            models.Index(fields=["identifier_value", "identifier_type"], name="consent_entry_identifier"),
            models.Index(
                fields=["recorded_for_profile_id"],
                name="consent_entry_recorded_for",
                condition=models.Q(recorded_for_profile_id__isnull=False),
            ),
            models.Index(
                fields=["subject_profile_id"],
                name="consent_entry_profile",
                condition=models.Q(subject_profile_id__isnull=False),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(subject_profile_id__isnull=False, identifier_type="", identifier_value="")
                    | (
                        models.Q(subject_profile_id__isnull=True)
                        & ~models.Q(identifier_type="")
                        & ~models.Q(identifier_value="")
                    )
                ),
                name="consent_entry_one_subject",
                violation_error_message="An entry is given either for an identifier or for a profile.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_decision_display()} {self.purpose_id}/{self.channel_id or '*'} for {self.subject}"

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise LedgerImmutable("Consent ledger entries are never changed; record a new entry instead.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise LedgerImmutable("Consent ledger entries are never deleted; record a withdrawal instead.")

    @property
    def subject(self) -> str:
        if self.subject_profile_id:
            return f"profile:{self.subject_profile_id}"
        return f"{self.identifier_type}:{self.identifier_value}"

    def as_rule_entry(self) -> rules.Entry:
        return rules.Entry(
            id=self.pk,
            contact_point=("profile", str(self.subject_profile_id))
            if self.subject_profile_id
            else (self.identifier_type, self.identifier_value),
            purpose=self.purpose_id,
            channel=self.channel_id,
            decision=self.decision,
            effective_at=self.effective_at,
            expires_at=self.expires_at,
        )


class ConsentRejection(models.Model):
    """A consent statement the API refused (a malformed identifier, an invalid TCF string, ...), kept as
    received with the reason, so a privacy officer can see what was sent and why it was not recorded."""

    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    source = models.ForeignKey(
        Source, null=True, blank=True, on_delete=models.PROTECT, related_name="consent_rejections"
    )
    recorded_by = models.CharField(max_length=150)
    index = models.PositiveIntegerField(help_text="Position in the request.")
    payload = JSONField(null=True)
    field = models.CharField(max_length=200, blank=True)
    reason = models.TextField()

    class Meta:
        ordering = ["-received_at", "index"]

    def __str__(self) -> str:
        return f"rejected consent {self.index} at {self.received_at:%Y-%m-%d %H:%M:%S}: {self.reason}"


# --- Data-subject requests -------------------------------------------------------------------------------


class DataSubjectRequest(models.Model):
    """A person's request under the GDPR or the CCPA (access, erasure, ...), with its legal deadline.

    The subject is named by identifiers (type + normalised value) and resolved to a profile. Only a verified
    request is executed. After an erasure the identifiers are replaced by their keyed hashes, so the request
    log itself holds no personal data; the steps are in ``DsrEvent``.
    """

    class Type(models.TextChoices):
        ACCESS = "access", "Access"
        PORTABILITY = "portability", "Portability"
        RECTIFICATION = "rectification", "Rectification"
        ERASURE = "erasure", "Erasure"
        RESTRICTION = "restriction", "Restriction of processing"
        OBJECTION = "objection", "Objection"

    class Regime(models.TextChoices):
        GDPR = "gdpr", "GDPR"
        CCPA = "ccpa", "CCPA / CPRA"

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        VERIFIED = "verified", "Identity verified"
        IN_PROGRESS = "in_progress", "In progress"
        COMPLETED = "completed", "Completed"
        REJECTED = "rejected", "Rejected"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=20, choices=Type.choices)
    regime = models.CharField(max_length=10, choices=Regime.choices, default=Regime.GDPR)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RECEIVED, db_index=True)
    identifiers = JSONField(
        default=list,
        help_text='Normalised [type, value] pairs; after an erasure [type, "hmac:<hash>"] instead.',
    )
    profile_id = models.UUIDField(
        null=True,
        blank=True,
        help_text="The profile the identifiers resolved to. Not a foreign key: erasure deletes the profile.",
    )
    received_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField(db_index=True, help_text="The legal deadline, extension included.")
    original_due_at = models.DateTimeField()
    extended_at = models.DateTimeField(null=True, blank=True)
    extension_reason = models.TextField(blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    verified_by = models.CharField(max_length=150, blank=True)
    verification_method = models.CharField(max_length=200, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    lifted_at = models.DateTimeField(null=True, blank=True, help_text="Restriction: when it was lifted.")
    outcome = JSONField(default=dict, blank=True, help_text="Counts of what execution did.")
    created_by = models.CharField(max_length=150)

    class Meta:
        verbose_name = "data-subject request"
        ordering = ["due_at", "received_at"]
        permissions = [("execute_datasubjectrequest", "Can execute data-subject requests (erase, export)")]
        indexes = [models.Index(fields=["profile_id"], name="dsr_profile")]

    def __str__(self) -> str:
        return f"{self.get_type_display()} request {str(self.pk)[:8]} ({self.get_status_display()})"

    @property
    def is_open(self) -> bool:
        return self.status not in (self.Status.COMPLETED, self.Status.REJECTED)


class DsrEvent(models.Model):
    """One step of a data-subject request (opened, verified, extended, executed, ...). Append-only, and
    without personal data: the request id, who acted (staff), the step, and counts."""

    request = models.ForeignKey(DataSubjectRequest, on_delete=models.PROTECT, related_name="events")
    action = models.CharField(max_length=30)
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20, blank=True)
    actor = models.CharField(max_length=150)
    note = models.TextField(blank=True)
    details = JSONField(default=dict, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "data-subject request step"
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.action} {self.from_status}->{self.to_status}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValueError("Request steps are an audit trail and never change.")
        super().save(*args, **kwargs)


class SuppressionEntry(models.Model):
    """An erased identifier, kept only as a keyed hash (HMAC-SHA256 with ``CDP_SUPPRESSION_KEY`` over the
    type and the normalised value), so that a later sync of the same person is recognised and dropped without
    the list itself holding who they were."""

    identifier_type = models.CharField(max_length=50)
    key_hash = models.CharField(max_length=64, unique=True)
    request = models.ForeignKey(
        DataSubjectRequest, null=True, blank=True, on_delete=models.SET_NULL, related_name="suppressions"
    )
    hits = models.PositiveBigIntegerField(default=0, help_text="Records and events dropped because of it.")
    last_hit_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "suppression list"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.identifier_type}:{self.key_hash[:12]}…"


class RestrictedProfile(models.Model):
    """Restriction of processing (GDPR art. 18): the profile is kept, but consent checks answer "not allowed"
    and exports leave it out until the restriction is lifted (the row is deleted, the request keeps the
    step)."""

    profile_id = models.UUIDField(unique=True)
    request = models.ForeignKey(DataSubjectRequest, on_delete=models.PROTECT, related_name="restrictions")
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"restricted {self.profile_id}"


class ProfileAccess(models.Model):
    """One read of a profile by staff (API or admin): who, when, which profile, which view. Append-only."""

    profile_id = models.UUIDField(db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150)
    view = models.CharField(max_length=100, help_text="e.g. api:profile-detail, admin:customer-360")
    accessed_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-accessed_at"]
        verbose_name_plural = "profile accesses"
        indexes = [models.Index(fields=["profile_id", "-accessed_at"], name="profile_access_profile_time")]

    def __str__(self) -> str:
        return f"{self.username} read {self.profile_id} ({self.view})"
