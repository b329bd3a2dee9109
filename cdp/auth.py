"""API authentication: source keys (also Segment-style write keys) and staff personal tokens.

Both are sent as ``Authorization: Bearer <key>``; a source key is also accepted as the HTTP Basic user name
with an empty password, the way Segment and RudderStack SDKs send their write key.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions

from cdp.keys import key_matches, key_parse

LAST_USED_RESOLUTION = timedelta(minutes=5)


@dataclass
class SourcePrincipal:
    """The caller is a source system, acting with its key's scopes."""

    source: object  # ingestion.models.Source
    key: object
    scopes: frozenset[str] = field(default_factory=frozenset)
    is_authenticated: bool = True
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False
    is_anonymous: bool = False
    pk = None
    id = None

    def __str__(self) -> str:
        return f"source:{self.source.slug}"

    def has_perm(self, perm: str, obj=None) -> bool:
        return False

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


def _touch(key) -> None:
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at > LAST_USED_RESOLUTION:
        type(key).objects.filter(pk=key.pk).update(last_used_at=now)


def authenticate_key(raw_key: str):
    """Return (user-or-principal, key) for a valid, unrevoked key, else raise AuthenticationFailed."""
    from cdp.models import StaffToken
    from ingestion.models import SourceKey

    parsed = key_parse(raw_key.strip()) if raw_key.isprintable() else None
    model = {SourceKey.KIND: SourceKey, StaffToken.KIND: StaffToken}.get(parsed[0]) if parsed else None
    if model is None:
        raise exceptions.AuthenticationFailed("Invalid API key.")
    related = "source" if model is SourceKey else "user"
    key = model.objects.select_related(related).filter(prefix=parsed[1], revoked_at__isnull=True).first()
    if key is None or not key_matches(raw_key.strip(), key.digest):
        raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
    _touch(key)
    if model is SourceKey:
        return SourcePrincipal(source=key.source, key=key, scopes=frozenset(key.scopes or ())), key
    if not key.user.is_active:
        raise exceptions.AuthenticationFailed("User inactive.")
    return key.user, key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, credentials = header.partition(" ")
        scheme = scheme.lower()
        if scheme in {"bearer", "token"}:
            if not credentials.strip():
                raise exceptions.AuthenticationFailed("Empty bearer token.")
            return authenticate_key(credentials)
        if scheme == "basic":
            try:
                decoded = base64.b64decode(credentials.strip()).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                raise exceptions.AuthenticationFailed("Malformed basic credentials.") from None
            username = decoded.partition(":")[0]
            if key_parse(username) is None:
                return None  # an ordinary username/password: not ours
            return authenticate_key(username)
        return None

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'
