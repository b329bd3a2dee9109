from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate


class CdpConfig(AppConfig):
    name = "cdp"
    verbose_name = "Platform"

    def ready(self) -> None:
        from . import lookups, schema, timestamps  # noqa: F401 - schema registers the OpenAPI auth extension
        from .roles import sync_roles_after_migrate

        post_migrate.connect(sync_roles_after_migrate, dispatch_uid="cdp.roles.sync")
        connection_created.connect(timestamps.install, dispatch_uid="cdp.timestamps")
        lookups.register()
