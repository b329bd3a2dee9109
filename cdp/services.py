"""Writes on the platform's own models: staff tokens and key revocation."""

from django.db.models import QuerySet
from django.utils import timezone

from .keys import key_generate
from .models import StaffToken


def staff_token_create(*, user, name: str = "") -> tuple[StaffToken, str]:
    """Issue a personal API token; the returned secret is shown once and stored only hashed."""
    new = key_generate(StaffToken.KIND)
    token = StaffToken.objects.create(user=user, name=name, prefix=new.prefix, digest=new.digest)
    return token, new.key


def keys_revoke(*, keys: QuerySet) -> int:
    """Revoke source keys or staff tokens. Rows stay, so past use of a key remains explained."""
    return keys.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
