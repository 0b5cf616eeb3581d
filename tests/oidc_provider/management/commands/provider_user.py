from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand

from tests.oidc_provider.models import Profile


class Command(BaseCommand):
    help = "Make or change a user of the provider: password, e-mail, groups (exactly these)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--password", required=True)
        parser.add_argument("--email", required=True)
        parser.add_argument("--groups", default="", help="comma-separated; empty for none")
        parser.add_argument("--unverified", action="store_true", help="email_verified false")

    def handle(self, *args, username, password, email, groups, unverified, **options):
        user, _ = get_user_model().objects.get_or_create(username=username)
        user.email = email
        user.set_password(password)
        user.save()
        names = [name for name in groups.split(",") if name]
        user.groups.set([Group.objects.get_or_create(name=name)[0] for name in names])
        Profile.objects.update_or_create(user=user, defaults={"email_verified": not unverified})
