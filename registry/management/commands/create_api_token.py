from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from registry.errors import RegistryError
from registry.models import Organization, TokenScope
from registry.services.tokens import token_create


class Command(BaseCommand):
    help = (
        "Make a personal API token for USER and print it (it is shown only this once). It "
        "acts in one organization: --org, or the user's only one."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli", help="what the token is for")
        parser.add_argument("--org", help="the organization the token acts in (its slug)")
        parser.add_argument(
            "--read-only", action="store_true", help="a token that is refused every change"
        )

    def handle(self, *args, username: str, name: str, org: str | None, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"user {username} not found")
        organization = None
        if org is not None:
            organization = Organization.objects.filter(slug=org).first()
            if organization is None:
                raise CommandError(f"organization {org} not found")
        scope = TokenScope.READ if options["read_only"] else TokenScope.WRITE
        try:
            token, raw = token_create(
                actor=user, user=user, name=name, scope=scope, org=organization
            )
        except RegistryError as error:
            raise CommandError(error.message) from None
        self.stderr.write(
            f"Token {token.prefix}… for {username} ({name}, {token.get_scope_display()}, "
            f"{token.org.slug}); it is not shown again:"
        )
        self.stdout.write(raw)
