"""Scoped tokens (SPEC 4.6): a read-only token is refused every change on every surface
(403), and reads as a read-write one does; a token bound to an organization finds every
other org absent (404); revocation holds from the next request."""

import re
from datetime import timedelta

import httpx
import pytest
from django.test import Client as DjangoClient
from django.utils import timezone

from api.urls import api as ninja_api
from approvals.services import request_create
from notifications.models import Delivery
from notifications.services import event_dispatch, webhook_create
from registry.errors import Forbidden, Invalid, NotFound
from registry.models import ActivityEvent, ApiToken, TokenScope
from registry.services.aliases import alias_set
from registry.services.comments import comment_add
from registry.services.flags import flag_raise
from registry.services.members import service_account_create
from registry.services.orgs import membership_set, team_create
from registry.services.registered_models import model_create
from registry.services.tokens import token_authenticate, token_create, token_revoke
from registry.services.versions import version_create
from tests.api.conftest import error_code

SCHEMA = ninja_api.get_openapi_schema(path_prefix="/api/v1/")
PARAMETER = re.compile(r"\{(\w+)(?::\w+)?\}")
CHANGES = ("post", "put", "patch", "delete")


def operations(methods) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, item in SCHEMA["paths"].items()
        for method in item
        if method in methods
    ]


@pytest.fixture
def world(settings, model, version, admin, alice, acme) -> dict:
    """Something behind every path parameter of the API, in acme, so that reads find it."""
    settings.WEBHOOK_ALLOW_PRIVATE = True
    alias_set(actor=alice, model=model, name="champion", version=version)
    stage_request = request_create(actor=alice, version=version, to_stage="staging")
    flag = flag_raise(actor=alice, version=version, severity="low", summary="drifts")
    hook = webhook_create(
        actor=admin, org=acme, model=model, url="http://127.0.0.1:9/", events=["comment.added"]
    )
    comment_add(actor=alice, model=model, body="for the webhook")
    event_dispatch(event_id=ActivityEvent.objects.get(verb="comment.added").pk)
    account = service_account_create(actor=admin, org=acme, name="ci")
    token, _ = token_create(actor=admin, user=account.user, name="ci", scope="read")
    return {
        "org": "acme",
        "model": "fraud",
        "number": "1",
        "path": "model.bin",
        "alias": "champion",
        "branch": "main",
        "request_id": stage_request.pk,
        "flag_id": flag.pk,
        "webhook_id": hook.pk,
        "delivery_id": Delivery.objects.get(webhook=hook).pk,
        "digest": version.digest,
        "username": "carol",
        "team_id": team_create(actor=admin, org=acme, name="ops").pk,
        "name": "ci",
        "token_id": token.pk,
        "rest": "lineage",  # under .../versions/@{alias}/: a redirect to the number's path
    }


def url(path: str, world: dict) -> str:
    return PARAMETER.sub(lambda match: str(world[match.group(1)]), path)


@pytest.fixture
def read_only(admin) -> str:
    return token_create(actor=admin, user=admin, name="ro", scope=TokenScope.READ)[1]


def test_it_walks_every_operation_of_the_schema():
    changes = operations(CHANGES)
    assert len(changes) > 30 and len(operations(("get",))) > 30
    # The endpoints of this feature are in the walk.
    assert ("POST", "/api/v1/orgs/{org}/invitations") in changes
    assert ("DELETE", "/api/v1/orgs/{org}/service-accounts/{name}/tokens/{token_id}") in changes


@pytest.mark.parametrize(("method", "path"), operations(CHANGES))
def test_it_refuses_every_change_to_a_read_only_token(api, world, read_only, method, path):
    events = ActivityEvent.objects.count()
    body = b"x" if path.endswith("{path}") else None
    response = api(method, url(path, world).removeprefix("/api/v1"), read_only, data=body)
    assert response.status_code == 403, (method, path, response.content[:200])
    assert error_code(response) == "forbidden"
    assert "read-only" in response.json()["error"]["message"]
    assert ActivityEvent.objects.count() == events


@pytest.mark.parametrize(("method", "path"), operations(("get",)))
def test_it_lets_a_read_only_token_read_as_a_read_write_one(
    api, world, read_only, admin_token, method, path
):
    target = url(path, world).removeprefix("/api/v1")
    allowed = api(method, target, admin_token)
    answered = api(method, target, read_only)
    assert answered.status_code == allowed.status_code, (path, answered.content[:200])
    assert answered.status_code in (200, 307, 404), (path, answered.content[:200])


def test_it_still_lets_a_read_write_token_change(api, model, alice):
    raw = token_create(actor=alice, user=alice, name="rw", scope=TokenScope.WRITE)[1]
    assert api("POST", "/orgs/acme/models", raw, {"name": "churn"}).status_code == 201


MLFLOW_CHANGES = [
    ("POST", "registered-models/create"),
    ("POST", "registered-models/rename"),
    ("PATCH", "registered-models/update"),
    ("DELETE", "registered-models/delete"),
    ("POST", "registered-models/set-tag"),
    ("DELETE", "registered-models/delete-tag"),
    ("POST", "registered-models/alias"),
    ("DELETE", "registered-models/alias"),
    ("POST", "model-versions/create"),
    ("PATCH", "model-versions/update"),
    ("DELETE", "model-versions/delete"),
    ("POST", "model-versions/set-tag"),
    ("DELETE", "model-versions/delete-tag"),
    ("POST", "model-versions/transition-stage"),
]


@pytest.mark.parametrize(("method", "endpoint"), MLFLOW_CHANGES)
def test_it_refuses_a_read_only_token_in_the_mlflow_api(version, alice, client, method, endpoint):
    raw = token_create(actor=alice, user=alice, name="ro", scope=TokenScope.READ)[1]
    headers = {"Authorization": f"Bearer {raw}"}
    base = "/mlflow/acme/api/2.0/mlflow/"
    found = client.get(base + "registered-models/get", {"name": "fraud"}, headers=headers)
    assert found.status_code == 200
    events = ActivityEvent.objects.count()
    body = {"name": "fraud", "version": "1", "key": "k", "value": "v", "alias": "a"}
    refused = getattr(client, method.lower())(
        base + endpoint, body, content_type="application/json", headers=headers
    )
    assert refused.status_code == 403
    assert refused.json()["error_code"] == "PERMISSION_DENIED"
    assert ActivityEvent.objects.count() == events


def through_django(request: httpx.Request) -> httpx.Response:
    """The client's request, answered by Django's test client (in the test's transaction)."""
    response = DjangoClient().generic(
        request.method,
        request.url.raw_path.decode(),
        data=request.content,
        content_type=request.headers.get("content-type", ""),
        headers={"Authorization": request.headers["authorization"]},
    )
    return httpx.Response(
        response.status_code, headers=dict(response.items()), content=response.content
    )


def test_it_raises_permission_denied_in_the_client_for_a_read_only_token(model, alice):
    from modelvault import Client
    from modelvault.errors import PermissionDenied

    raw = token_create(actor=alice, user=alice, name="ro", scope=TokenScope.READ)[1]
    transport = httpx.MockTransport(through_django)
    with Client("http://testserver", token=raw, org="acme", transport=transport) as client:
        assert client.get_registered_model("fraud").name == "fraud"
        with pytest.raises(PermissionDenied, match="read-only"):
            client.create_registered_model("churn")


# Bound to an organization


@pytest.fixture
def in_both(acme, globex, admin, mallory):
    """admin, a member of globex too, with a globex model, a version, a request and a flag."""
    membership_set(actor=mallory, org=globex, user=admin)
    gmodel = model_create(actor=mallory, org=globex, name="radar")
    gversion = version_create(actor=mallory, model=gmodel)
    stage_request = request_create(actor=mallory, version=gversion, to_stage="staging")
    flag = flag_raise(actor=mallory, version=gversion, severity="high", summary="odd")
    return {"version": gversion, "request": stage_request, "flag": flag}


def test_it_binds_a_token_to_its_org_as_if_others_did_not_exist(api, model, admin, in_both):
    acme_only = token_create(actor=admin, user=admin, name="acme", org=model.org)[1]
    both = token_create(actor=admin, user=admin, name="globex", org=in_both["version"].model.org)
    assert api("GET", "/orgs/globex/models", both[1]).status_code == 200
    digest = in_both["version"].digest
    for path in (
        "/orgs/globex/models",
        "/orgs/globex/models/radar",
        "/orgs/globex/models/radar/versions/1",
        "/orgs/globex/members",
        "/orgs/globex",
        f"/stage-requests/{in_both['request'].pk}",
        f"/flags/{in_both['flag'].pk}",
    ):
        response = api("GET", path, acme_only)
        assert response.status_code == 404, path
        assert error_code(response) == "not_found"
    assert api("GET", f"/versions/by-digest/{digest}", acme_only).json()["items"] == []
    assert api("GET", "/orgs/globex/approvals/pending", acme_only).status_code == 404
    refused = api("POST", f"/stage-requests/{in_both['request'].pk}/approve", acme_only, {})
    assert refused.status_code == 404
    assert api("GET", "/orgs/acme/models/fraud", acme_only).status_code == 200


def test_it_binds_a_superusers_token_too(api, model, root, in_both):
    token = token_create(actor=root, user=root, name="acme", org=model.org)[1]
    assert api("GET", "/orgs/acme/models/fraud", token).status_code == 200
    assert api("GET", "/orgs/globex/models/radar", token).status_code == 404


def test_it_binds_the_mlflow_api_too(model, admin, in_both, client):
    token = token_create(actor=admin, user=admin, name="acme", org=model.org)[1]
    response = client.get(
        "/mlflow/globex/api/2.0/mlflow/registered-models/get",
        {"name": "radar"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 404
    assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_it_binds_a_new_token_to_the_users_only_org_or_asks(acme, globex, admin, alice, mallory):
    token, _ = token_create(actor=alice, user=alice, name="ci")
    assert token.org == acme and token.scope == TokenScope.WRITE
    membership_set(actor=mallory, org=globex, user=admin)
    with pytest.raises(Invalid, match="name the organization"):
        token_create(actor=admin, user=admin, name="ci")
    with pytest.raises(Invalid, match="not a member of globex"):
        token_create(actor=alice, user=alice, name="ci", org=globex)
    before = ApiToken.objects.count()
    for bad in ({"scope": "admin"}, {"expires_at": timezone.now().replace(tzinfo=None)}):
        with pytest.raises(Invalid):
            token_create(actor=alice, user=alice, name="ci", **bad)
    assert ApiToken.objects.count() == before


def test_it_records_token_events_in_the_tokens_org(acme, alice):
    expires = timezone.now() + timedelta(days=30)
    token, _ = token_create(actor=alice, user=alice, name="ci", scope="read", expires_at=expires)
    made = ActivityEvent.objects.filter(org=acme).order_by("-seq").first()
    assert (made.verb, made.target_type, made.actor_name) == ("token.created", "token", "alice")
    assert made.changes == {
        "name": [None, "ci"],
        "scope": [None, "read"],
        "expires_at": [None, expires.isoformat()],
    }
    assert made.data == {"user": "alice", "prefix": token.prefix}
    token_revoke(actor=alice, token=token)
    revoked = ActivityEvent.objects.filter(org=acme).order_by("-seq").first()
    assert (revoked.verb, revoked.changes) == ("token.revoked", {"revoked": [False, True]})
    token_revoke(actor=alice, token=token)  # twice: no second event
    assert ActivityEvent.objects.filter(org=acme).order_by("-seq").first().pk == revoked.pk


def test_it_records_the_revocation_of_an_unbound_token_in_each_org_of_its_user(
    acme, globex, alice, mallory
):
    membership_set(actor=mallory, org=globex, user=alice)
    token, _ = token_create(actor=alice, user=alice, name="old", org=acme)
    ApiToken.objects.filter(pk=token.pk).update(org=None)  # as made before tokens had an org
    token_revoke(actor=alice, token=token)
    verbs = ActivityEvent.objects.filter(verb="token.revoked").values_list("org__slug", flat=True)
    assert sorted(verbs) == ["acme", "globex"]


def test_it_refuses_a_revoked_token_on_the_next_request(api, model, alice):
    token, raw = token_create(actor=alice, user=alice, name="ci")
    assert api("GET", "/orgs/acme/models", raw).status_code == 200
    token_revoke(actor=alice, token=token)
    assert api("GET", "/orgs/acme/models", raw).status_code == 401


def test_it_refuses_an_expired_token_with_401(api, model, alice):
    token, raw = token_create(
        actor=alice, user=alice, name="ci", expires_at=timezone.now() + timedelta(hours=1)
    )
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert api("GET", "/orgs/acme/models", raw).status_code == 401


# Service accounts' tokens


def test_it_lets_an_org_admin_make_and_revoke_a_service_accounts_tokens(
    api, acme, model, admin, alice, carol, mallory
):
    account = service_account_create(actor=admin, org=acme, name="ci")
    with pytest.raises(Forbidden):
        token_create(actor=carol, user=account.user, name="x")
    with pytest.raises(NotFound):
        token_create(actor=mallory, user=account.user, name="x")
    token, raw = token_create(actor=admin, user=account.user, name="gha", scope="read")
    assert token.org == acme
    assert token_authenticate(raw) == account.user
    # Reads what it is granted (visibility=organization: the org's models), changes nothing.
    assert api("GET", "/orgs/acme/models/fraud", raw).status_code == 200
    assert api("POST", "/orgs/acme/models", raw, {"name": "x"}).status_code == 403
    with pytest.raises(NotFound):
        token_revoke(actor=alice, token=token)
    token_revoke(actor=admin, token=token)
    assert api("GET", "/orgs/acme/models/fraud", raw).status_code == 401


def test_it_makes_a_scoped_token_from_the_command_line(acme, globex, admin, mallory):
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    membership_set(actor=mallory, org=globex, user=admin)
    out = StringIO()
    call_command(
        "create_api_token", "admin", "--org", "globex", "--read-only", stdout=out, stderr=StringIO()
    )
    token = ApiToken.objects.get(user=admin, name="cli")
    assert (token.org, token.scope) == (globex, TokenScope.READ)
    assert token_authenticate(out.getvalue().strip()) == admin
    with pytest.raises(CommandError, match="name the organization"):
        call_command("create_api_token", "admin", stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="not found"):
        call_command("create_api_token", "admin", "--org", "nope", stderr=StringIO())


def test_it_confines_every_list_and_role_to_the_tokens_org(acme, globex, admin, mallory, in_both):
    from approvals.models import StageChangeRequest
    from registry.models import RegisteredModel
    from registry.models.catalog import role_in

    membership_set(actor=mallory, org=globex, user=admin, role="admin")
    raw = token_create(actor=admin, user=admin, name="acme", org=acme)[1]
    confined = token_authenticate(raw)
    assert role_in(admin, globex) == "admin" and role_in(confined, globex) is None
    assert role_in(confined, acme) == "admin"
    assert RegisteredModel.objects.visible_to(admin).filter(org=globex).exists()
    assert not RegisteredModel.objects.visible_to(confined).filter(org=globex).exists()
    queue = StageChangeRequest.objects.reviewable_by
    assert queue(admin).filter(pk=in_both["request"].pk).exists()
    assert not queue(confined).filter(pk=in_both["request"].pk).exists()
