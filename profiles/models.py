"""The unified person and everything that ties source data to it."""

import uuid

from django.db import models
from django.utils import timezone

from cdp.fields import JSONField
from ingestion.models import Source


class Profile(models.Model):
    """One real person. A profile merged into another stays as a tombstone pointing at its survivor,
    so ids handed out earlier keep working."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        MERGED = "merged", "Merged into another profile"
        EMPTY = "empty", "No records left"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    merged_into = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="merged_profiles"
    )
    golden = JSONField(default=dict, blank=True, help_text="The surviving value of each attribute.")
    lineage = JSONField(
        default=dict, blank=True, help_text="Per attribute: the source record its golden value came from."
    )
    display_name = models.CharField(max_length=300, blank=True)
    # Indexed below for equality and prefix (LIKE 'x%') only; the trigram and word indexes of migrations 0005
    # and 0010 serve the rest of name search.
    search_name = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # varchar_pattern_ops serves both = and LIKE 'x%' (PostgreSQL; elsewhere a plain index): one
            # btree where db_index=True builds two, both written on every golden refresh.
            models.Index(
                fields=["search_name"], name="profile_search_name_prefix", opclasses=["varchar_pattern_ops"]
            )
        ]

    def __str__(self) -> str:
        return self.display_name or str(self.id)


class Identity(models.Model):
    """A normalised identifier (email, phone, a source's id, ...) and the one profile it belongs to."""

    type = models.CharField(max_length=50)
    value = models.CharField(max_length=320)
    # Indexed by ("profile", "type") below, which serves lookups by profile alone too.
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="identities", db_index=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "identities"
        constraints = [models.UniqueConstraint(fields=["value", "type"], name="identity_unique_value_type")]
        indexes = [models.Index(fields=["profile", "type"], name="identity_profile_type")]

    def __str__(self) -> str:
        return f"{self.type}:{self.value}"


class SourceRecord(models.Model):
    """The latest state of one record of one source, normalised, and the profile it resolved to."""

    # No index of its own: the unique (source, external_id) index starts with it.
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="records", db_index=False)
    external_id = models.CharField(max_length=255)
    profile = models.ForeignKey(
        Profile, null=True, blank=True, on_delete=models.PROTECT, related_name="records"
    )
    attributes = JSONField(default=dict, blank=True)
    identifiers = JSONField(default=list, blank=True, help_text="Normalised [type, value] pairs.")
    content_hash = models.CharField(max_length=32, blank=True)
    source_updated_at = models.DateTimeField(
        null=True, blank=True, help_text="The source's own change time, when it sends one."
    )
    version_at = models.DateTimeField(
        help_text="The source's change time, or when we received it: an older version never overwrites this."
    )
    deleted_at = models.DateTimeField(null=True, blank=True)
    inbound_seq = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="Receipt order of the version applied (its inbound record id): decides between an update "
        "and a deletion, which share no clock of the source's. That inbound record holds its payload as "
        "received, kept once.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"], name="source_record_unique_external_id")
        ]
        # The search box looks a record up by its external id alone, whatever its source.
        indexes = [models.Index(fields=["external_id"], name="source_record_external_id")]

    def __str__(self) -> str:
        return f"{self.source_id}:{self.external_id}"


class MergeEvent(models.Model):
    """Immutable audit entry: one profile merged into another, why, and on what evidence."""

    survivor = models.ForeignKey(Profile, on_delete=models.PROTECT, related_name="merges_received")
    merged = models.ForeignKey(Profile, on_delete=models.PROTECT, related_name="merges_given")
    rule = models.CharField(max_length=100)
    evidence = JSONField(default=dict)
    actor = models.CharField(max_length=150, default="system")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.merged_id} -> {self.survivor_id} ({self.rule})"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Merge audit entries are immutable.")
        super().save(*args, **kwargs)


class ResolutionConflict(models.Model):
    """A link the resolver refused to make (it would break an identifier rule), kept for a steward."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        RESOLVED = "resolved", "Resolved"
        DISMISSED = "dismissed", "Dismissed"

    record = models.ForeignKey(SourceRecord, on_delete=models.CASCADE, related_name="conflicts")
    profile = models.ForeignKey(
        Profile, on_delete=models.CASCADE, related_name="conflicts", help_text="Where the record went."
    )
    other_profiles = JSONField(default=list, help_text="Profiles the record would have linked.")
    identifier_type = models.CharField(max_length=50)
    reason = models.TextField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.record}: {self.reason}"


class RecordChange(models.Model):
    """History of a source record as it reached us: created, updated (which fields), deleted.

    Kept on the profile it belonged to at the time (re-pointed on merges), so a person's journey shows what
    each source system changed and when."""

    class Kind(models.TextChoices):
        CREATED = "created", "Created"
        UPDATED = "updated", "Updated"
        DELETED = "deleted", "Deleted"

    # An append-only history written with every chunk: no database constraints on its pointers (each would
    # cost a lookup and a lock of the row pointed at, per history row, at every commit). The ORM keeps them
    # true: deleting a record, a profile or a source goes through it (CASCADE, PROTECT).
    record = models.ForeignKey(
        SourceRecord, on_delete=models.CASCADE, related_name="changes", db_constraint=False
    )
    # Indexed by ("profile", "-occurred_at") below, which serves lookups by profile alone too.
    profile = models.ForeignKey(
        Profile,
        null=True,
        on_delete=models.CASCADE,
        related_name="record_changes",
        db_index=False,
        db_constraint=False,
    )
    # Not indexed: nothing reads history by source (deleting a source reads it once, PROTECT).
    source = models.ForeignKey(
        Source, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    changed_fields = JSONField(default=list, blank=True)
    occurred_at = models.DateTimeField(help_text="The source's change time, or when we received it.")
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-occurred_at"]
        indexes = [models.Index(fields=["profile", "-occurred_at"], name="record_change_profile_time")]

    def __str__(self) -> str:
        return f"{self.record} {self.kind}"


class Event(models.Model):
    """A behavioural event of a person (Segment Spec: identify, track, page, screen, group, alias).

    The largest table: narrow, one row per message, deduplicated on the sender's message id per source, and
    read by profile and time (the timeline). Re-pointed to the survivor when profiles merge."""

    # No single-column indexes on the foreign keys: the two below lead with them (fewer indexes to write on
    # the busiest insert).
    profile = models.ForeignKey(
        Profile, null=True, on_delete=models.SET_NULL, related_name="events", db_index=False
    )
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="+", db_index=False)
    message_id = models.CharField(max_length=255)
    type = models.CharField(max_length=10)
    name = models.CharField(
        max_length=255, blank=True, help_text="track: the event; page / screen: the name."
    )
    timestamp = models.DateTimeField(help_text="When it happened, corrected for the sender's clock skew.")
    original_timestamp = models.DateTimeField(null=True, blank=True, help_text="As the sender stated it.")
    sent_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField()
    user_id = models.CharField(max_length=255, blank=True)
    anonymous_id = models.CharField(max_length=255, blank=True)
    properties = JSONField(default=dict, blank=True)
    context = JSONField(default=dict, blank=True, help_text="ip, userAgent, page, campaign (UTM) ...")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "message_id"], name="event_unique_source_message_id")
        ]
        # One ordered scan per type: the timeline filtered to a rare kind reads only that kind's rows.
        indexes = [
            models.Index(fields=["profile", "type", "-timestamp", "-id"], name="event_profile_type_time")
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.name}".strip()


class NeverLink(models.Model):
    """Two source records a steward (or an unmerge) said are different people: the resolver never puts them
    on one profile again, whatever identifiers or matching evidence they share. Stored with the lower record
    id first, so each pair exists once."""

    record_a = models.ForeignKey(SourceRecord, on_delete=models.CASCADE, related_name="+")
    record_b = models.ForeignKey(SourceRecord, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=100, help_text="review:rejected, unmerge, ...")
    actor = models.CharField(max_length=150, default="system")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["record_a", "record_b"], name="never_link_unique_pair"),
            models.CheckConstraint(
                condition=models.Q(record_a__lt=models.F("record_b")), name="never_link_ordered"
            ),
        ]
        indexes = [models.Index(fields=["record_b"], name="never_link_record_b")]

    def __str__(self) -> str:
        return f"{self.record_a_id} != {self.record_b_id}"


class MatchSuggestion(models.Model):
    """A probable match between a record's profile and another profile, scored between the two thresholds
    (or above the upper one but stopped by a guardrail), waiting for a data steward."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ACCEPTED = "accepted", "Accepted (merged)"
        REJECTED = "rejected", "Rejected (never link)"
        OBSOLETE = "obsolete", "Obsolete (already one profile, or a record is gone)"

    record = models.ForeignKey(
        SourceRecord, on_delete=models.CASCADE, related_name="match_suggestions", help_text="The new record."
    )
    candidate_record = models.ForeignKey(
        SourceRecord,
        on_delete=models.CASCADE,
        related_name="match_suggestions_as_candidate",
        help_text="The existing record it resembles.",
    )
    profile = models.ForeignKey(
        Profile, on_delete=models.CASCADE, related_name="match_suggestions", help_text="Where the record is."
    )
    candidate_profile = models.ForeignKey(
        Profile, on_delete=models.CASCADE, related_name="match_suggestions_as_candidate"
    )
    probability = models.FloatField()
    explanation = JSONField(default=dict, help_text="Per field: level and weight; total; why review.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN, db_index=True)
    decided_by = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-probability", "created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["record", "candidate_record"],
                condition=models.Q(status="open"),
                name="match_suggestion_one_open_per_pair",
            )
        ]

    def __str__(self) -> str:
        return f"{self.record_id} ~ {self.candidate_record_id} ({self.probability:.3f})"


class ProfileSplit(models.Model):
    """Immutable audit entry of an unmerge: records moved from one profile to a new one, by whom and why."""

    profile = models.ForeignKey(Profile, on_delete=models.PROTECT, related_name="splits_given")
    new_profile = models.ForeignKey(Profile, on_delete=models.PROTECT, related_name="splits_received")
    records = JSONField(default=list, help_text="The moved records: [{source, external_id, id}].")
    reason = models.TextField(blank=True)
    actor = models.CharField(max_length=150, default="system")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.profile_id} -> {self.new_profile_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise ValueError("Split audit entries are immutable.")
        super().save(*args, **kwargs)


class SurvivorshipRule(models.Model):
    """How the golden value of one canonical attribute is chosen among the candidate values."""

    class Rule(models.TextChoices):
        TRUST_RANK = "trust_rank", "Most trusted source (ties: most recent)"
        MOST_RECENT = "most_recent", "Most recent (by the source's own change time)"
        MOST_FREQUENT = "most_frequent", "Most frequent (ties: most trusted)"
        MOST_COMPLETE = "most_complete", "Most complete (longest value; ties: most trusted)"

    attribute = models.CharField(max_length=100, unique=True)
    rule = models.CharField(max_length=20, choices=Rule.choices, default=Rule.TRUST_RANK)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["attribute"]

    def __str__(self) -> str:
        return f"{self.attribute}: {self.rule}"


class MatchKey(models.Model):
    """A blocking key of a live source record (postcode, phonetic surname + birth year, phone tail, ...):
    how the incremental matcher finds the few existing records worth comparing a new one with."""

    # Derived data, rebuilt by ``match_keys_rebuild``, about seven rows a record: no database constraint
    # (it would cost a lookup and a lock of the record per key at every commit). The ORM deletes a record's
    # keys with it (CASCADE).
    record = models.ForeignKey(
        SourceRecord, on_delete=models.CASCADE, related_name="match_keys", db_constraint=False
    )
    key = models.CharField(max_length=200)

    class Meta:
        # The foreign key's own index serves lookups by record (a second one only cost every insert).
        indexes = [models.Index(fields=["key"], name="match_key_key")]

    def __str__(self) -> str:
        return self.key


class MatchModelVersion(models.Model):
    """The Fellegi-Sunter parameters estimated (EM, term frequencies) from the data itself; the newest
    active one scores incoming records."""

    params = JSONField(help_text="MatchModel.to_dict()")
    records_used = models.PositiveIntegerField(default=0)
    pairs_used = models.PositiveIntegerField(default=0)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        get_latest_by = "created_at"

    def __str__(self) -> str:
        return f"match model {self.pk} ({self.created_at:%Y-%m-%d %H:%M})"
