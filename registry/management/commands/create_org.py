"""Boot a fresh install without the Django shell: an organization and its first admin."""

import os
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from registry.errors import RegistryError
from registry.models import Organization, Role
from registry.services.orgs import org_create

# Where a new admin's password may come from when the command runs unattended.
PASSWORD_VARIABLE = "MODELVAULT_ADMIN_PASSWORD"


class Command(BaseCommand):
    help = (
        "Create the organization SLUG with USERNAME as its admin, creating that user when "
        "missing (password from $MODELVAULT_ADMIN_PASSWORD, else a generated one printed "
        "once). Run again for an org that USERNAME already administers, it changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug", help="the organization's slug, as in its URLs")
        parser.add_argument("--admin", required=True, metavar="USERNAME", help="its first admin")
        parser.add_argument("--name", help="the organization's display name (default: SLUG)")
        parser.add_argument("--email", default="", help="the admin's e-mail, for a new user")

    def handle(self, *args, slug: str, admin: str, name: str | None, email: str, **options):
        password = None
        try:
            with transaction.atomic():
                user, password = self._user(admin, email)
                org = Organization.objects.filter(slug=slug).first()
                if org is None:
                    org = org_create(actor=None, slug=slug, name=name or slug, admin=user)
                    done = f"Created organization {slug} with admin {admin}"
                elif org.memberships.filter(user=user, role=Role.ADMIN).exists():
                    done = f"Organization {slug} exists and {admin} is already its admin"
                else:
                    raise CommandError(
                        f"organization {slug} exists and {admin} is not its admin: one of its "
                        "admins makes them one (Members, in the admin console); nothing was "
                        "changed"
                    )
        except RegistryError as exc:
            raise CommandError(f"{exc}; nothing was changed") from None
        self.stdout.write(done)
        if password is not None:
            self.stdout.write(
                f"Created user {admin} with the password below; it is not shown again "
                f"(`manage.py changepassword {admin}` sets another):\n{password}"
            )

    def _user(self, username: str, email: str):
        """(the user, the generated password to print or None)."""
        User = get_user_model()
        user = User.objects.filter(username=username).first()
        if user is not None:
            if not user.is_active:
                raise CommandError(f"user {username} is deactivated; nothing was changed")
            return user, None
        user = User(username=username, email=email)
        try:
            user.full_clean(exclude=["password"])
        except ValidationError as exc:
            problems = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
            raise CommandError(f"user {username!r}: {problems}; nothing was changed") from None
        given = os.environ.get(PASSWORD_VARIABLE)
        password = given or secrets.token_urlsafe(18)
        if given:
            try:
                validate_password(given, user)
            except ValidationError as exc:
                raise CommandError(
                    f"${PASSWORD_VARIABLE}: {' '.join(exc.messages)}; nothing was changed"
                ) from None
        user.set_password(password)
        user.save()
        return user, None if given else password
