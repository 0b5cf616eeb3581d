"""What single sign-on keeps: who a provider's subject is here, which of an org's
memberships the mapping manages, and the mapping itself (sso/services.py)."""

from django.conf import settings
from django.db import models

from registry.models import Membership, Organization, Role, Team


class Identity(models.Model):
    """A user's account at the identity provider. The (issuer, subject) pair never
    changes there, so it finds the user here whatever their e-mail address has become."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sso_identities"
    )
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)
    last_login_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="sso_identity_unique")
        ]
        verbose_name_plural = "identities"

    def __str__(self) -> str:
        return f"{self.subject} at {self.issuer}"


class GroupMapping(models.Model):
    """Members of the provider's group `group` (a value of the groups claim) belong to
    `org` with `role`, in `teams`. Several mappings of one org that a user matches add up:
    admin wins over member, and the teams are their union."""

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="sso_mappings")
    group = models.CharField(max_length=200)
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.MEMBER)
    teams = models.ManyToManyField(Team, blank=True, related_name="sso_mappings")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["org", "group"], name="sso_mapping_unique_group")
        ]
        ordering = ["org_id", "group"]

    def __str__(self) -> str:
        return f"{self.org}: {self.group}"


class ManagedMembership(models.Model):
    """That a login made this membership through the mapping, which therefore changes and
    removes it. A membership an admin made by hand has no such row and is left alone; when
    an admin removes a managed membership, this row goes with it."""

    membership = models.OneToOneField(
        Membership, on_delete=models.CASCADE, related_name="sso_managed"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.membership} (single sign-on)"
