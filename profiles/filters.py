"""Profile filters, shared by the API and any other list of profiles."""

import django_filters
from django.conf import settings
from rest_framework.exceptions import ValidationError

from ingestion.normalise import InvalidValue, normalise_email, normalise_phone, search_text

from .models import Profile


class ProfileFilter(django_filters.FilterSet):
    email = django_filters.CharFilter(
        method="filter_email", help_text="Any of the person's emails, any case."
    )
    phone = django_filters.CharFilter(
        method="filter_phone", help_text="Any of the person's phones, in any format (E.164 or national)."
    )
    region = django_filters.CharFilter(
        method="filter_noop", help_text="Country code to read a national phone number in (default: US)."
    )
    name = django_filters.CharFilter(
        method="filter_name", help_text="Part of the name; accents and case ignored."
    )
    source = django_filters.CharFilter(
        field_name="records__source__slug", distinct=True, help_text="Has a record from this source (slug)."
    )
    updated_since = django_filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")

    class Meta:
        model = Profile
        fields = []

    def _identity(self, queryset, kind: str, value: str):
        return queryset.filter(identities__type=kind, identities__value=value)

    def filter_email(self, queryset, name, value):
        try:
            return self._identity(queryset, "email", normalise_email(value))
        except InvalidValue as exc:
            raise ValidationError({"email": [str(exc)]}) from None

    def filter_phone(self, queryset, name, value):
        region = self.data.get("region") or settings.CDP_DEFAULT_PHONE_REGION
        try:
            return self._identity(queryset, "phone", normalise_phone(value, region))
        except InvalidValue as exc:
            raise ValidationError({"phone": [str(exc)]}) from None

    def filter_name(self, queryset, name, value):
        return queryset.filter(search_name__contains=search_text(value))

    def filter_noop(self, queryset, name, value):
        return queryset
