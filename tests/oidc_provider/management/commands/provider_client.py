from django.core.management.base import BaseCommand
from oauth2_provider.models import Application


class Command(BaseCommand):
    help = "Register (or update) the confidential OIDC client that Modelvault signs in with."

    def add_arguments(self, parser):
        parser.add_argument("client_id")
        parser.add_argument("client_secret")
        parser.add_argument("redirect_uri")

    def handle(self, *args, client_id, client_secret, redirect_uri, **options):
        application = Application.objects.filter(client_id=client_id).first() or Application(
            client_id=client_id
        )
        application.name = "Modelvault"
        application.client_type = Application.CLIENT_CONFIDENTIAL
        application.authorization_grant_type = Application.GRANT_AUTHORIZATION_CODE
        application.client_secret = client_secret
        application.redirect_uris = redirect_uri
        application.algorithm = Application.RS256_ALGORITHM
        application.skip_authorization = True
        application.save()
