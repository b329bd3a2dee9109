from rest_framework import serializers

from profiles.masking import mask_attributes
from profiles.models import Profile


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


class TimelineEntrySerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="track, page, screen, identify, group, alias, record or merge.")
    at = serializers.DateTimeField()
    source = serializers.CharField(help_text="The source's slug; empty for merges.")
    id = serializers.CharField()
    name = serializers.CharField(required=False, help_text="Events: the track event or page / screen name.")
    message_id = serializers.CharField(required=False)
    user_id = serializers.CharField(required=False)
    anonymous_id = serializers.CharField(required=False)
    original_timestamp = serializers.DateTimeField(required=False, allow_null=True)
    received_at = serializers.DateTimeField(required=False)
    properties = serializers.JSONField(required=False)
    context = serializers.JSONField(required=False)
    change = serializers.CharField(required=False, help_text="Records: created, updated or deleted.")
    external_id = serializers.CharField(required=False)
    changed_fields = serializers.ListField(child=serializers.CharField(), required=False)
    merged = serializers.CharField(required=False)
    survivor = serializers.CharField(required=False)
    rule = serializers.CharField(required=False)
    actor = serializers.CharField(required=False)


class TimelinePageSerializer(serializers.Serializer):
    profile = serializers.UUIDField()
    next = serializers.CharField(allow_null=True)
    results = TimelineEntrySerializer(many=True)
