from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from profiles.masking import mask_attributes
from profiles.models import Profile
from profiles.timeline import EVENT_TYPES


class ProfileSummarySerializer(serializers.ModelSerializer):
    attributes = serializers.JSONField(source="golden", help_text="Golden value of each attribute.")

    class Meta:
        model = Profile
        fields = ["id", "display_name", "attributes", "created_at", "updated_at"]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if rules := self.context.get("pii_rules"):
            data["attributes"] = mask_attributes(data["attributes"], rules)
        return data


class CandidateSerializer(serializers.Serializer):
    value = serializers.JSONField()
    source = serializers.CharField()
    record = serializers.IntegerField()
    external_id = serializers.CharField()
    trust_rank = serializers.IntegerField()
    observed_at = serializers.DateTimeField()


class GoldenValueSerializer(serializers.Serializer):
    value = serializers.JSONField()
    source = serializers.CharField(help_text="Source the golden value came from.")
    record = serializers.IntegerField(help_text="Source record it came from.")
    external_id = serializers.CharField()
    observed_at = serializers.DateTimeField()
    rule = serializers.CharField(
        required=False, help_text="The survivorship rule that chose it: trust_rank, most_recent, ..."
    )
    candidates = CandidateSerializer(many=True, help_text="Every value the sources hold.")


class IdentitySerializer(serializers.Serializer):
    type = serializers.CharField()
    value = serializers.CharField()


class ProfileRecordSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    source = serializers.CharField()
    external_id = serializers.CharField()
    attributes = serializers.DictField()
    identifiers = IdentitySerializer(many=True)
    source_updated_at = serializers.DateTimeField(allow_null=True)
    version_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class MergeSerializer(serializers.Serializer):
    merged = serializers.UUIDField()
    rule = serializers.CharField()
    evidence = serializers.DictField()
    actor = serializers.CharField()
    at = serializers.DateTimeField()


class ProfileDetailSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()
    display_name = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    attributes = serializers.DictField(child=GoldenValueSerializer())
    identities = IdentitySerializer(many=True)
    records = ProfileRecordSerializer(many=True)
    merges = MergeSerializer(many=True)


class TimelineEntryBase(serializers.Serializer):
    at = serializers.DateTimeField()
    source = serializers.CharField(help_text="The source's slug; empty for merges and splits.")
    id = serializers.CharField(help_text="Unique across kinds: event:<n>, record:<n>, merge:<n>, split:<n>.")


class TimelineEventSerializer(TimelineEntryBase):
    """A tracking event (Segment Spec)."""

    kind = serializers.ChoiceField(choices=EVENT_TYPES)
    name = serializers.CharField(help_text="track: the event; page / screen: the name; otherwise empty.")
    message_id = serializers.CharField()
    user_id = serializers.CharField()
    anonymous_id = serializers.CharField()
    original_timestamp = serializers.DateTimeField(
        allow_null=True, help_text="The time the sender stated, before the clock-skew correction (at)."
    )
    received_at = serializers.DateTimeField()
    properties = serializers.JSONField(help_text="track / page / screen properties; identify traits; ...")
    context = serializers.JSONField(help_text="ip, userAgent, page, campaign (UTM) ...")


class TimelineRecordSerializer(TimelineEntryBase):
    """A change a source system (CRM, ERP...) made to one of its records."""

    kind = serializers.ChoiceField(choices=["record"])
    change = serializers.ChoiceField(choices=["created", "updated", "deleted"])
    external_id = serializers.CharField()
    changed_fields = serializers.ListField(child=serializers.CharField())


class TimelineMergeSerializer(TimelineEntryBase):
    """Another profile merged into this one (or into a profile since merged into this one)."""

    kind = serializers.ChoiceField(choices=["merge"])
    merged = serializers.CharField()
    survivor = serializers.CharField()
    rule = serializers.CharField()
    actor = serializers.CharField()


class TimelineSplitSerializer(TimelineEntryBase):
    """An unmerge: records moved from ``profile`` to ``new_profile``; shown on both halves."""

    kind = serializers.ChoiceField(choices=["split"])
    profile = serializers.CharField()
    new_profile = serializers.CharField()
    records = serializers.ListField(
        child=serializers.DictField(), help_text="The moved records: [{source, external_id, id}]."
    )
    reason = serializers.CharField(allow_blank=True)
    actor = serializers.CharField()


TIMELINE_ENTRY_SERIALIZERS = {
    **dict.fromkeys(EVENT_TYPES, TimelineEventSerializer),
    "record": TimelineRecordSerializer,
    "merge": TimelineMergeSerializer,
    "split": TimelineSplitSerializer,
}


@extend_schema_field(
    PolymorphicProxySerializer(
        component_name="TimelineEntry",
        serializers=TIMELINE_ENTRY_SERIALIZERS,
        resource_type_field_name="kind",
        many=False,
    )
)
class TimelineEntryField(serializers.Field):
    """One entry, in the shape of its kind: every field of that shape present, no field of another."""

    def to_representation(self, entry):
        # One serializer per kind, bound once: building one per entry cost more than the page's queries.
        if not hasattr(self, "_by_kind"):
            self._by_kind = {kind: cls() for kind, cls in TIMELINE_ENTRY_SERIALIZERS.items()}
        return self._by_kind[entry["kind"]].to_representation(entry)


class TimelinePageSerializer(serializers.Serializer):
    profile = serializers.UUIDField()
    next = serializers.CharField(allow_null=True)
    results = serializers.ListField(child=TimelineEntryField())
