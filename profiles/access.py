"""Reads of one profile, and lists of them, as seen by the apps above ``profiles``.

``profiles`` may not import ``consent``; the access log and the restriction of processing live there. So the
API and the admin call these two functions, which run the hooks named in settings (the way
``CDP_PROFILE_PANELS`` adds sections to the Customer 360 page):

- ``CDP_PROFILE_READ_HOOKS``: ``(*, request, profile, view) -> None | str``, on every read of one profile
  (detail, lookup, timeline, consents, the admin page); a string is a reason to refuse the read.
- ``CDP_PROFILE_LIST_FILTERS``: ``(*, request, queryset) -> queryset``, on lists of profiles.
"""

from __future__ import annotations

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string


@cache
def _hooks(setting: str) -> tuple:
    return tuple(import_string(path) for path in getattr(settings, setting, ()))


def profile_read(*, request, profile, view: str) -> str | None:
    """Tell the hooks that ``request.user`` reads ``profile`` through ``view`` (e.g. ``api:profile-detail``).
    Returns the first refusal, or None when the read may go on."""
    for hook in _hooks("CDP_PROFILE_READ_HOOKS"):
        refusal = hook(request=request, profile=profile, view=view)
        if refusal:
            return refusal
    return None


def profiles_visible(*, request, queryset):
    """The profiles of ``queryset`` this caller may receive in a list."""
    for hook in _hooks("CDP_PROFILE_LIST_FILTERS"):
        queryset = hook(request=request, queryset=queryset)
    return queryset
