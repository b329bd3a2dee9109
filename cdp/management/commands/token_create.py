from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from cdp.services import staff_token_create


class Command(BaseCommand):
    help = "Issue a personal API token for a staff user (printed as the last line of output)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="")

    def handle(self, *args, username, name, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}")
        _, secret = staff_token_create(user=user, name=name)
        self.stdout.write(f"Token for {username} (shown once; send as 'Authorization: Bearer <token>'):")
        self.stdout.write(secret)
