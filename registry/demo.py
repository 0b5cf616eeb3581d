"""The demo cast of SPEC 4.4, shared by seed_demo, the docs and the test suite.

acme: admin (org admin), alice (write + approve on the demo models), bob (approve),
carol (view only); globex: mallory. Passwords are for the embedded default only.
"""

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

from registry.models import Membership, Organization, RegisteredModel, Role
from registry.services.orgs import membership_set, org_create
from registry.services.registered_models import model_create, model_grant

User = get_user_model()

# username -> (org, role, is_staff)
CAST = {
    "admin": ("acme", Role.ADMIN, True),
    "alice": ("acme", Role.MEMBER, False),
    "bob": ("acme", Role.MEMBER, False),
    "carol": ("acme", Role.MEMBER, False),
    "mallory": ("globex", Role.ADMIN, False),
}
ORGS = {"acme": "Acme Corp", "globex": "Globex Corporation"}


def demo_password(username: str) -> str:
    return f"{username}-demo"


@dataclass
class Cast:
    acme: Organization
    globex: Organization
    users: dict

    def __getattr__(self, name: str):
        try:
            return self.users[name]
        except KeyError:
            raise AttributeError(name) from None


@transaction.atomic
def ensure_cast(*, passwords: bool = True) -> Cast:
    """Create (or find) the demo orgs and users. Idempotent."""
    users = {}
    for username, (_, _, is_staff) in CAST.items():
        user, created = User.objects.get_or_create(
            username=username, defaults={"email": f"{username}@example.com", "is_staff": is_staff}
        )
        if created and passwords:
            user.set_password(demo_password(username))
            user.save()
        users[username] = user
    orgs = {}
    for slug, name in ORGS.items():
        org = Organization.objects.filter(slug=slug).first()
        if org is None:
            first_admin = next(
                users[u] for u, (o, role, _) in CAST.items() if o == slug and role == Role.ADMIN
            )
            org = org_create(actor=None, slug=slug, name=name, admin=first_admin)
        orgs[slug] = org
    for username, (slug, role, _) in CAST.items():
        if not Membership.objects.filter(org=orgs[slug], user=users[username]).exists():
            org_admin = Membership.objects.filter(org=orgs[slug], role=Role.ADMIN).first().user
            membership_set(actor=org_admin, org=orgs[slug], user=users[username], role=role)
    return Cast(acme=orgs["acme"], globex=orgs["globex"], users=users)


@transaction.atomic
def ensure_shared_model(cast: Cast, name: str, **fields) -> RegisteredModel:
    """An acme model owned by admin, shared as the cast says: alice write + approve, bob
    approve, carol views through the org's visibility (or not at all when private)."""
    model = RegisteredModel.objects.filter(org=cast.acme, name=name).first()
    if model is not None:
        return model
    model = model_create(actor=cast.admin, org=cast.acme, name=name, **fields)
    for permission in ("view", "write", "approve"):
        model_grant(actor=cast.admin, model=model, permission=permission, user=cast.alice)
    for permission in ("view", "approve"):
        model_grant(actor=cast.admin, model=model, permission=permission, user=cast.bob)
    return model
