from django.apps import AppConfig


class ConsentConfig(AppConfig):
    name = "consent"
    verbose_name = "Consent and privacy"

    def ready(self) -> None:
        from celery.signals import task_prerun
        from django.core.signals import request_started

        from .dsr import memory_forget_if_erased

        # Every process forgets its memos of personal data once it sees a newer erasure (see cdp.memory).
        request_started.connect(memory_forget_if_erased, dispatch_uid="consent.memory.request")
        task_prerun.connect(memory_forget_if_erased, dispatch_uid="consent.memory.task")
