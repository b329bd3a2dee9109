from django.apps import AppConfig


class CdpConfig(AppConfig):
    name = "cdp"
    verbose_name = "Platform"

    def ready(self) -> None:
        from . import schema  # noqa: F401 - registers the OpenAPI auth extension
