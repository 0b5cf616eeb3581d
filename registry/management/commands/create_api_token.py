from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from registry.services.tokens import token_create


class Command(BaseCommand):
    help = "Make a personal API token for USER and print it (it is shown only this once)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="what the token is for")

    def handle(self, *args, username: str, name: str, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"user {username} not found")
        token, raw = token_create(actor=user, user=user, name=name)
        self.stderr.write(f"Token {token.prefix}… for {username} ({name}); it is not shown again:")
        self.stdout.write(raw)
