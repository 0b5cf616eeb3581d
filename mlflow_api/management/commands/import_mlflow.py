"""`manage.py import_mlflow --from URL --org SLUG`: copy an MLflow server's registered models
into an organization (docs/mlflow.md, "Importing from an MLflow server")."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from mlflow_api.importer import import_mlflow
from mlflow_api.mlflow_source import MlflowServer, SourceError
from registry.errors import RegistryError
from registry.models import Membership, Organization, Role


class Command(BaseCommand):
    help = (
        "Copy the registered models of a running MLflow server (its REST API) into the "
        "organization SLUG: versions with their numbers, descriptions, tags, aliases, stages "
        "and run links, and with --artifacts their files. Run it again to finish an "
        "interrupted import; a run over an import already done changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--from", dest="url", required=True, metavar="URL", help="the MLflow server"
        )
        parser.add_argument(
            "--org", required=True, metavar="SLUG", help="the organization to import into"
        )
        parser.add_argument(
            "--model",
            metavar="PATTERN",
            help="only the MLflow models whose name matches this shell-style pattern "
            "(fraud, 'fraud-*'); default: every model",
        )
        parser.add_argument(
            "--artifacts",
            action="store_true",
            help="also copy each version's files, through MLflow's artifact proxy",
        )
        parser.add_argument(
            "--as",
            dest="username",
            metavar="USERNAME",
            help="the org admin recorded as the actor of every imported row and event "
            "(default: the organization's admin, when it has exactly one)",
        )

    def handle(self, *args, url, org, model, artifacts, username, **options):
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            raise CommandError(f"no organization {org!r}: nothing was changed")
        actor = self._actor(organization, username)
        try:
            source = MlflowServer(url)
            result = import_mlflow(
                actor=actor,
                org=organization,
                source=source,
                pattern=model,
                artifacts=artifacts,
                say=self._say,
            )
        except SourceError as exc:
            raise CommandError(str(exc) if exc.partial else f"{exc}; nothing was changed") from None
        except RegistryError as exc:
            raise CommandError(f"{exc.message}; nothing was changed") from None
        not_mapped = result.all_not_mapped()
        versions = sum(len(m.versions) for m in result.models)
        files = sum(m.files for m in result.models)
        self.stdout.write(
            f"Done: {len(result.models)} model(s) from {source.url} into {org}: {versions} new "
            f"version(s), {files} new file(s); {len(not_mapped)} thing(s) not mapped"
            + (":" if not_mapped else ".")
        )
        for line in not_mapped:
            self.stdout.write(f"  {line}")

    def _say(self, line: str) -> None:
        self.stdout.write(line)
        self.stdout.flush()

    def _actor(self, org: Organization, username: str | None):
        admins = Membership.objects.filter(org=org, role=Role.ADMIN, user__is_active=True)
        if username is None:
            found = list(admins.select_related("user").order_by("user__username")[:5])
            if len(found) != 1:
                names = ", ".join(m.user.get_username() for m in found) or "none"
                raise CommandError(
                    f"{org.slug} has {len(found) if len(found) < 5 else 'several'} active "
                    f"admins ({names}): name the one to record with --as USERNAME; nothing "
                    "was changed"
                )
            return found[0].user
        user = get_user_model().objects.filter(username=username).first()
        if user is None or not admins.filter(user=user).exists():
            raise CommandError(
                f"{username!r} is not an active admin of {org.slug}: --as names an org admin; "
                "nothing was changed"
            )
        return user
