from django.conf import settings
from django.db import models
from django.utils import timezone


class HashedKey(models.Model):
    """A secret handed out once; only its prefix and digest are stored (see cdp.keys)."""

    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class StaffToken(HashedKey):
    """A personal API token: acts as its user, with that user's permissions."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")

    KIND = "pt"

    def __str__(self) -> str:
        return f"{self.user} token {self.prefix}…"
