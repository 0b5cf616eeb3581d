"""Who sees what (SPEC 3.1): not viewable is NotFound everywhere, viewable but not allowed is
Forbidden, and the visible_to querysets leave out what a user may not view."""

import itertools

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db.models import Exists, OuterRef, Q

from registry.errors import Forbidden, NotFound
from registry.models import (
    ActivityEvent,
    ModelGroupPermission,
    ModelPermission,
    ModelUserPermission,
    ModelVersion,
    RegisteredModel,
    Role,
    Visibility,
)
from registry.models.catalog import GrantedTo, is_acting, role_in
from registry.permissions import (
    get_model_for_user,
    get_org_for_user,
    get_version_by_ref,
    get_version_for_user,
    model_access,
)
from registry.services.artifacts import artifact_delete, artifact_put
from registry.services.comments import comment_add
from registry.services.orgs import membership_remove, team_create, team_set_members
from registry.services.registered_models import (
    model_create,
    model_delete,
    model_grant,
    model_revoke,
    model_update,
    model_watch,
)
from registry.services.versions import (
    version_create,
    version_delete,
    version_set_lock_level,
    version_update,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def secret(acme, admin):
    """A private acme model with one version and one artifact; nobody but admin granted."""
    model = model_create(actor=admin, org=acme, name="secret", visibility=Visibility.PRIVATE)
    version_create(actor=admin, model=model, artifacts={"model.bin": [b"secret"]})
    return model


@pytest.fixture
def inactive_alice(alice):
    alice.is_active = False
    alice.save()
    return alice


def granted_by_querysets(user, codename: str | None = None, model_ref: str = "pk") -> Q:
    """What a grant is, in the ORM's own terms: a permission row (of `codename`, or of any)
    of the user's, or of a team of theirs, on the model at `model_ref`."""
    on_model = {"content_object_id": OuterRef(model_ref)}
    if codename is not None:
        on_model["permission__codename"] = codename
    by_user = ModelUserPermission.objects.filter(user_id=user.pk, **on_model)
    by_team = ModelGroupPermission.objects.filter(group__user=user.pk, **on_model)
    return Q(Exists(by_user)) | Q(Exists(by_team))


def visible_names(user) -> list[str]:
    return sorted(str(m) for m in RegisteredModel.objects.visible_to(user))


def visible_versions(user) -> list[str]:
    return sorted(str(v) for v in ModelVersion.objects.visible_to(user).select_related("model"))


# --- fetch helpers --------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["carol", "bob", "alice", "mallory", "inactive_alice", "anonymous"])
def test_it_answers_not_found_from_every_fetch_helper_to_those_who_cannot_view(
    request, secret, who
):
    user = AnonymousUser() if who == "anonymous" else request.getfixturevalue(who)
    with pytest.raises(NotFound, match="model secret not found"):
        get_model_for_user(user, "acme", "secret")
    with pytest.raises(NotFound, match="model secret not found"):
        get_version_for_user(user, "acme", "secret", 1)
    with pytest.raises(NotFound, match="model secret not found"):
        get_version_by_ref(user, "acme", "secret@champion")
    # The same answer as for a model that does not exist at all.
    with pytest.raises(NotFound, match="model nothing not found"):
        get_model_for_user(user, "acme", "nothing")


@pytest.mark.parametrize("who", ["mallory", "inactive_alice", "anonymous"])
def test_it_answers_not_found_for_an_org_to_non_members(request, acme, model, who):
    user = AnonymousUser() if who == "anonymous" else request.getfixturevalue(who)
    with pytest.raises(NotFound, match="organization acme not found"):
        get_org_for_user(user, "acme")
    with pytest.raises(NotFound, match="organization acme not found"):
        get_org_for_user(user, acme, need="admin")
    with pytest.raises(NotFound, match="model fraud not found"):
        get_model_for_user(user, "acme", "fraud")
    with pytest.raises(NotFound, match="model fraud not found"):
        get_version_for_user(user, acme, "fraud", 1)


def test_it_finds_what_a_user_may_view(acme, model, admin, carol, root):
    version_create(actor=admin, model=model)
    assert get_org_for_user(carol, "acme") == acme
    assert get_model_for_user(carol, "acme", "fraud") == model
    assert get_version_for_user(carol, acme, "fraud", 1).number == 1
    assert get_org_for_user(root, "acme", need="admin") == acme
    with pytest.raises(NotFound, match="version 2 of model fraud not found"):
        get_version_for_user(carol, "acme", "fraud", 2)
    with pytest.raises(NotFound, match="organization nowhere not found"):
        get_org_for_user(root, "nowhere")


def test_it_answers_forbidden_when_viewable_but_not_allowed(acme, model, admin, carol, bob):
    version_create(actor=admin, model=model)
    with pytest.raises(Forbidden, match="needs an org admin of acme"):
        get_org_for_user(carol, "acme", need="admin")
    with pytest.raises(Forbidden, match="do not have write permission on model fraud"):
        get_model_for_user(carol, "acme", "fraud", need="write")
    with pytest.raises(Forbidden, match="do not have approve permission on model fraud"):
        get_version_for_user(carol, "acme", "fraud", 1, need="approve")
    with pytest.raises(Forbidden, match="do not have write permission on model fraud"):
        get_version_for_user(bob, "acme", "fraud", 1, need="write")
    assert get_version_for_user(bob, "acme", "fraud", 1, need="approve").number == 1
    with pytest.raises(Forbidden, match="do not have write permission on model fraud"):
        version_update(actor=carol, version=model.versions.get(), description="x")


# --- services -------------------------------------------------------------------------------


def _service_calls(model, version, outsider_grantee):
    return {
        "model_update": lambda u: model_update(actor=u, model=model, description="x"),
        "model_delete": lambda u: model_delete(actor=u, model=model),
        "model_grant": lambda u: model_grant(
            actor=u, model=model, permission="view", user=outsider_grantee
        ),
        "model_revoke": lambda u: model_revoke(
            actor=u, model=model, permission="view", user=outsider_grantee
        ),
        "model_watch": lambda u: model_watch(actor=u, model=model),
        "comment_add": lambda u: comment_add(actor=u, model=model, body="hello"),
        "version_create": lambda u: version_create(actor=u, model=model),
        "version_update": lambda u: version_update(actor=u, version=version, description="x"),
        "version_set_lock_level": lambda u: version_set_lock_level(
            actor=u, version=version, level="closed"
        ),
        "version_delete": lambda u: version_delete(actor=u, version=version),
        "artifact_put": lambda u: artifact_put(
            actor=u, version=version, path="x.bin", source=[b"x"]
        ),
        "artifact_delete": lambda u: artifact_delete(actor=u, version=version, path="model.bin"),
    }


@pytest.mark.parametrize("who", ["carol", "mallory", "inactive_alice", "anonymous"])
def test_it_answers_not_found_from_every_service_to_those_who_cannot_view(
    request, subtests, secret, carol, who
):
    user = AnonymousUser() if who == "anonymous" else request.getfixturevalue(who)
    version = secret.versions.get()
    events = ActivityEvent.objects.count()
    for service, call in _service_calls(secret, version, carol).items():
        with subtests.test(service=service):
            with pytest.raises(NotFound, match="not found"):
                call(user)
            assert ActivityEvent.objects.count() == events
            assert version.artifacts.count() == 1
            assert RegisteredModel.objects.filter(pk=secret.pk).exists()


# --- visible_to -----------------------------------------------------------------------------


@pytest.fixture
def catalog(model, secret, admin, mallory, globex):
    """acme/fraud (organization-wide), acme/secret (private), globex/rockets."""
    version_create(actor=admin, model=model)
    rockets = model_create(actor=mallory, org=globex, name="rockets")
    version_create(actor=mallory, model=rockets)
    return model, secret, rockets


def test_it_leaves_private_models_out_for_members_without_a_grant(catalog, carol, bob):
    for user in (carol, bob):
        assert visible_names(user) == ["acme/fraud"]
        assert visible_versions(user) == ["fraud v1"]


def test_it_shows_a_private_model_to_a_granted_user(catalog, admin, carol, bob):
    _, secret, _ = catalog
    model_grant(actor=admin, model=secret, permission="view", user=carol)
    # Any of the three permissions lets a member view the model.
    model_grant(actor=admin, model=secret, permission="approve", user=bob)
    for user in (carol, bob):
        assert visible_names(user) == ["acme/fraud", "acme/secret"]
        assert visible_versions(user) == ["fraud v1", "secret v1"]
        assert get_model_for_user(user, "acme", "secret") == secret
    model_revoke(actor=admin, model=secret, permission="view", user=carol)
    assert visible_names(carol) == ["acme/fraud"]
    with pytest.raises(NotFound):
        get_model_for_user(carol, "acme", "secret")


def test_it_shows_a_private_model_to_members_of_a_granted_team(catalog, acme, admin, carol, bob):
    _, secret, _ = catalog
    team = team_create(actor=admin, org=acme, name="risk")
    team_set_members(actor=admin, team=team, users=[carol])
    model_grant(actor=admin, model=secret, permission="write", team=team)

    assert visible_names(carol) == ["acme/fraud", "acme/secret"]
    assert visible_versions(carol) == ["fraud v1", "secret v1"]
    assert visible_names(bob) == ["acme/fraud"]
    # The team's grant is a real one: carol may write through it.
    version = version_create(actor=carol, model=secret)
    assert version.number == 2

    team_set_members(actor=admin, team=team, users=[bob])
    assert visible_names(carol) == ["acme/fraud"]
    assert visible_names(bob) == ["acme/fraud", "acme/secret"]
    with pytest.raises(NotFound):
        get_version_for_user(carol, "acme", "secret", 1)


def test_it_shows_org_admins_and_superusers_everything_they_govern(catalog, admin, mallory, root):
    assert visible_names(admin) == ["acme/fraud", "acme/secret"]
    assert visible_names(mallory) == ["globex/rockets"]
    assert visible_versions(mallory) == ["rockets v1"]
    assert visible_names(root) == ["acme/fraud", "acme/secret", "globex/rockets"]


def test_it_shows_nothing_of_another_org_even_with_a_stale_grant(catalog, acme, admin, alice):
    _, secret, _ = catalog
    model_grant(actor=admin, model=secret, permission="view", user=alice)
    assert "acme/secret" in visible_names(alice)
    membership_remove(actor=admin, org=acme, user=alice)
    # The guardian rows remain; without a membership they give nothing.
    assert visible_names(alice) == []
    assert visible_versions(alice) == []
    with pytest.raises(NotFound):
        get_model_for_user(alice, "acme", "fraud")


def test_it_shows_nothing_to_inactive_or_anonymous_users(catalog, alice, root):
    for user in (alice, root):
        user.is_active = False
        user.save()
        assert visible_names(user) == []
        assert visible_versions(user) == []
    assert visible_names(AnonymousUser()) == []
    assert visible_versions(AnonymousUser()) == []


@pytest.mark.django_db
def test_it_judges_visibility_as_stored_not_as_a_stale_instance_says(cast, model, carol):
    stale = RegisteredModel.objects.get(pk=model.pk)
    model_update(actor=cast.admin, model=model, visibility="private")
    assert stale.visibility == "organization"
    with pytest.raises(NotFound):
        comment_add(actor=carol, model=stale, body="still here?")


@pytest.fixture
def reached(catalog, acme, admin, alice, bob, carol):
    """The catalog, with acme/secret reached every way: carol's own grant, bob's team's
    grant, and alice's grant left behind by her removed membership; and acme/vault, private
    and granted to nobody."""
    _, secret, _ = catalog
    vault = model_create(actor=admin, org=acme, name="vault", visibility=Visibility.PRIVATE)
    version_create(actor=admin, model=vault)
    model_grant(actor=admin, model=secret, permission="view", user=carol)
    team = team_create(actor=admin, org=acme, name="reviewers")
    team_set_members(actor=admin, team=team, users=[bob])
    model_grant(actor=admin, model=secret, permission="approve", team=team)
    model_grant(actor=admin, model=secret, permission="write", user=alice)
    membership_remove(actor=admin, org=acme, user=alice)
    return catalog


@pytest.mark.parametrize(
    "who", ["admin", "alice", "bob", "carol", "mallory", "root", "inactive_admin", "anonymous"]
)
def test_the_list_filter_and_the_access_of_one_model_agree(request, reached, admin, carol, who):
    """SPEC 3.1 has one filter for lists (visible_to, visible_in) and one computation for a
    model (access_from, behind model_access and the fetch helpers): they give one answer."""
    # Members who hold write too: carol by her own grant, bob by his team's.
    fraud, secret, _ = reached
    model_grant(actor=admin, model=secret, permission="write", user=carol)
    model_grant(actor=admin, model=fraud, permission="write", team=fraud.org.teams.get())
    if who == "inactive_admin":
        admin.is_active = False
        admin.save()
    user = AnonymousUser() if who == "anonymous" else request.getfixturevalue(who.split("_")[-1])
    listed = set(RegisteredModel.objects.visible_to(user))
    for model in RegisteredModel.objects.select_related("org"):
        view = model_access(user, model).view
        assert (model in listed) == view, (who, str(model))
        assert RegisteredModel.objects.visible_in(user, model.org).contains(model) == view
        assert ModelVersion.objects.visible_to(user).filter(model=model).exists() == view
        try:
            get_model_for_user(user, model.org.slug, model.name)
        except NotFound:
            fetched = False
        else:
            fetched = True
        assert fetched == view, (who, str(model))
        # The fetch's plain-SQL role and grants, against the ORM's own filters.
        role = role_in(user, model.org)
        for codename, word in (
            (ModelPermission.WRITE, "write"),
            (ModelPermission.APPROVE, "approve"),
        ):
            granted = (
                is_acting(user)
                and (
                    RegisteredModel.objects.filter(pk=model.pk).filter(
                        granted_by_querysets(user, codename)
                    )
                ).exists()
            )
            held = role == Role.ADMIN or (role is not None and granted)
            assert getattr(model_access(user, model), word) == held, (who, str(model), word)
    expected = {
        "admin": {"acme/fraud", "acme/secret", "acme/vault"},
        "alice": set(),
        "bob": {"acme/fraud", "acme/secret"},
        "carol": {"acme/fraud", "acme/secret"},
        "mallory": {"globex/rockets"},
        "root": {"acme/fraud", "acme/secret", "acme/vault", "globex/rockets"},
    }
    assert {str(m) for m in listed} == expected.get(who, set())


def test_the_written_out_grant_is_the_querysets_grant(reached, admin, alice, bob, carol, mallory):
    """GrantedTo, the lists' test of a grant written as SQL, keeps the rows that the
    permission querysets keep, and leaves out the others: own grants, team grants, a grant
    left behind by a removed membership, none; on models and on rows that point at one."""
    _, secret, _ = reached
    model_grant(actor=admin, model=secret, permission="write", user=carol)
    users, codenames = (admin, alice, bob, carol, mallory), (None, *ModelPermission.values)
    refs = (("pk", RegisteredModel.objects), ("model_id", ModelVersion.objects))
    for user, codename in itertools.product(users, codenames):
        for model_ref, rows in refs:
            written = GrantedTo(user.pk, model_ref, codename)
            oracle = granted_by_querysets(user, codename, model_ref)
            assert set(rows.filter(written)) == set(rows.filter(oracle)), (user, codename)
            assert set(rows.exclude(written)) == set(rows.exclude(oracle)), (user, codename)
    writes = RegisteredModel.objects.filter(GrantedTo(carol.pk, "pk", ModelPermission.WRITE))
    assert {str(m) for m in writes} == {"acme/secret"}
    granted = {
        user.username: {str(m) for m in RegisteredModel.objects.filter(GrantedTo(user.pk))}
        for user in (alice, bob, carol, mallory)
    }
    # acme/secret: carol by her own grant, bob by his team's, alice by hers, left behind her
    # removed membership. acme/fraud: the cast's grants to alice and bob (carol views it as
    # a member). globex/rockets: mallory, its creator. acme/vault: nobody.
    assert granted == {
        "alice": {"acme/fraud", "acme/secret"},
        "bob": {"acme/fraud", "acme/secret"},
        "carol": {"acme/secret"},
        "mallory": {"globex/rockets"},
    }


def test_visible_in_an_org_is_visible_to_narrowed_to_that_org(
    reached, cast, acme, globex, admin, alice, bob, carol, mallory, root
):
    """The org-scoped form (one role read, a simpler statement) keeps exactly the rows of
    the general one, whatever reaches the model: role, visibility, own grant, team grant,
    a grant left behind by a removed membership."""
    users = [admin, alice, bob, carol, mallory, root, AnonymousUser()]
    seen = {}
    for user in users:
        for org in (acme, globex):
            general = RegisteredModel.objects.visible_to(user).filter(org=org)
            scoped = RegisteredModel.objects.visible_in(user, org)
            assert set(scoped) == set(general), (user, org)
            assert set(ModelVersion.objects.visible_in(user, org)) == set(
                ModelVersion.objects.visible_to(user).filter(model__org=org)
            )
            seen[(str(user), org.slug)] = sorted(str(m) for m in scoped)
    assert seen[("carol", "acme")] == seen[("bob", "acme")] == ["acme/fraud", "acme/secret"]
    assert seen[("alice", "acme")] == seen[("mallory", "acme")] == []
    assert seen[("mallory", "globex")] == ["globex/rockets"]
