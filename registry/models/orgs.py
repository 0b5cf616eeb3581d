from django.conf import settings
from django.contrib.auth.models import Group
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

from registry.models.choices import LockLevel, Role
from registry.models.history import history_records

slug_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9-]{0,62}$",
    "Use 1-63 lowercase letters, digits or hyphens, starting with a letter or digit.",
)


class Organization(models.Model):
    slug = models.CharField(max_length=63, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    default_lock_level = models.CharField(
        max_length=8, choices=LockLevel.choices, default=LockLevel.OPEN
    )
    required_approvals = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1)]
    )
    closed_is_final = models.BooleanField(
        default=False,
        help_text="Compliance mode: a closed version can never be lowered, by anyone.",
    )
    # Granted approve on every new model of the org (registry.services.registered_models),
    # so that a member's request has someone to review it besides the org admins.
    default_reviewers = models.ForeignKey(
        "Team",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="A team granted approve on every new model.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    history = history_records()

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Membership(models.Model):
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)
    history = history_records()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org", "user"], name="membership_unique_user")
        ]
        ordering = ["org_id", "user_id"]

    def __str__(self) -> str:
        return f"{self.user} in {self.org} ({self.role})"


class Team(models.Model):
    """A Django Group that belongs to one organization, so permissions can go to a team."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="teams")
    name = models.CharField(max_length=100)
    group = models.OneToOneField(Group, on_delete=models.CASCADE, related_name="team")
    created_at = models.DateTimeField(auto_now_add=True)
    history = history_records()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["org", "name"], name="team_unique_name")]
        ordering = ["org_id", "name"]

    def __str__(self) -> str:
        return f"{self.org}/{self.name}"

    @staticmethod
    def group_name(org: Organization, name: str) -> str:
        # Group names are global in Django; prefixing the org keeps teams of two orgs apart.
        return f"{org.slug}/{name}"


service_account_name_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9-]{0,39}$",
    "Use 1-40 lowercase letters, digits or hyphens, starting with a letter or digit.",
)


class ServiceAccount(models.Model):
    """A user owned by one organization for automation (CI, monitoring jobs): it never logs
    in (no usable password) and acts only through the API tokens its org's admins make
    for it, with the grants and teams they give it. Its username is `<org>.<name>`."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="service_accounts")
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="service_account"
    )
    name = models.CharField(max_length=40, validators=[service_account_name_validator])
    description = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org", "name"], name="service_account_unique_name")
        ]
        ordering = ["org_id", "name"]

    def __str__(self) -> str:
        return self.username_for(self.org, self.name) if self.org_id else self.name

    @staticmethod
    def username_for(org: Organization, name: str) -> str:
        # Usernames are global; an org slug holds no dot, so the org is what precedes it.
        return f"{org.slug}.{name}"
