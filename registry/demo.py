"""The demo cast of SPEC 4.4, shared by seed_demo, the docs and the test suite.

acme: admin (org admin), alice (write + approve on the demo models), bob (approve),
carol (view only); globex: mallory. Passwords are for the embedded default only.

seed_demo also gives acme its teams (TEAMS): the model teams name who works on what, and
`reviewers` are the org's default reviewers (approve on every new model).
"""

from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction

from registry.models import Membership, Organization, RegisteredModel, Role, Team
from registry.services.orgs import (
    membership_set,
    org_create,
    org_update,
    team_create,
    team_set_members,
)
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
# acme's teams and their members; REVIEWERS is the org's default reviewers.
TEAMS = {
    "risk": ("alice", "bob"),
    "growth": ("alice", "carol"),
    "vision": ("alice",),
    "reviewers": ("alice", "bob"),
}
REVIEWERS = "reviewers"


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


@transaction.atomic
def ensure_teams(cast: Cast) -> dict[str, Team]:
    """acme's teams with their members, and its default reviewers when none are set, made
    by its admin through the services. Idempotent: a team that exists is left as it is."""
    teams = {}
    for name, members in TEAMS.items():
        team = Team.objects.filter(org=cast.acme, name=name).first()
        if team is None:
            team = team_create(actor=cast.admin, org=cast.acme, name=name)
            team_set_members(actor=cast.admin, team=team, users=[cast.users[u] for u in members])
        teams[name] = team
    cast.acme.refresh_from_db()
    if cast.acme.default_reviewers_id is None:
        org_update(actor=cast.admin, org=cast.acme, default_reviewers=teams[REVIEWERS])
    return teams
