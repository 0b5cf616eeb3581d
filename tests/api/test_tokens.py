import hashlib
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from registry.errors import Forbidden, Invalid
from registry.models import ApiToken
from registry.services.tokens import token_authenticate, token_create, token_revoke


def test_it_stores_only_the_hash_and_prefix(alice):
    token, raw = token_create(actor=alice, user=alice, name="ci")
    assert token.hashed == hashlib.sha256(raw.encode()).hexdigest()
    assert token.prefix == raw[:8]
    stored = ApiToken.objects.filter(pk=token.pk).values().get()
    assert raw not in {str(v) for v in stored.values()}


def test_it_authenticates_a_live_token(alice):
    _, raw = token_create(actor=alice, user=alice, name="ci")
    assert token_authenticate(raw) == alice
    assert token_authenticate(raw + "x") is None
    assert token_authenticate("") is None


def test_it_refuses_a_revoked_token(alice):
    token, raw = token_create(actor=alice, user=alice, name="ci")
    token_revoke(actor=alice, token=token)
    assert token_authenticate(raw) is None


def test_it_refuses_an_expired_token(alice):
    token, raw = token_create(
        actor=alice, user=alice, name="ci", expires_at=timezone.now() + timedelta(hours=1)
    )
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert token_authenticate(raw) is None


def test_it_refuses_an_inactive_user(alice):
    _, raw = token_create(actor=alice, user=alice, name="ci")
    alice.is_active = False
    alice.save()
    assert token_authenticate(raw) is None


def test_it_records_the_last_use_at_most_once_a_minute(alice):
    token, raw = token_create(actor=alice, user=alice, name="ci")
    token_authenticate(raw)
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    assert first is not None
    token_authenticate(raw)
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(minutes=2))
    token_authenticate(raw)
    assert ApiToken.objects.get(pk=token.pk).last_used_at > first - timedelta(minutes=2)


def test_it_refuses_a_token_for_someone_else(alice, bob):
    with pytest.raises(Forbidden):
        token_create(actor=alice, user=bob, name="x")


def test_it_refuses_a_past_expiry(alice):
    with pytest.raises(Invalid):
        token_create(actor=alice, user=alice, name="x", expires_at=timezone.now())


def test_it_answers_401_without_credentials(api, model):
    response = api("GET", "/orgs/acme/models")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


def test_it_answers_401_for_a_revoked_token(api, model, alice):
    token, raw = token_create(actor=alice, user=alice, name="ci")
    token_revoke(actor=alice, token=token)
    assert api("GET", "/orgs/acme/models", raw).status_code == 401


def test_it_accepts_the_session_for_reads(model, alice_client):
    assert alice_client.get("/api/v1/orgs/acme/models").status_code == 200


def test_it_enforces_csrf_on_session_writes(model, alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.get("/api/v1/orgs/acme/models")  # any page; the token comes with the form below
    refused = client.post(
        "/api/v1/orgs/acme/models", {"name": "x"}, content_type="application/json"
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    client.get(reverse("catalog:tokens"))
    csrf = client.cookies["csrftoken"].value
    accepted = client.post(
        "/api/v1/orgs/acme/models",
        {"name": "x"},
        content_type="application/json",
        headers={"X-CSRFToken": csrf},
    )
    assert accepted.status_code == 201


def test_it_needs_no_csrf_with_a_token(api, model, alice_token):
    api.client = Client(enforce_csrf_checks=True)
    assert api("POST", "/orgs/acme/models", alice_token, {"name": "x"}).status_code == 201


def test_it_answers_unknown_paths_with_json_404(api, alice_token):
    response = api("GET", "/no/such/thing", alice_token)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_it_serves_the_openapi_document_and_docs(api, alice_token):
    document = api("GET", "/openapi.json").json()
    assert "/api/v1/orgs/{org}/models" in document["paths"]
    assert api("GET", "/docs").status_code == 200


def test_it_answers_bad_json_with_400(api, model, alice_token):
    response = api.client.post(
        "/api/v1/orgs/acme/models",
        data="{not json",
        content_type="application/json",
        headers={"Authorization": f"Bearer {alice_token}"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


# The command and the seed


def test_it_prints_a_new_token_once(alice):
    out = StringIO()
    call_command("create_api_token", "alice", "--name", "laptop", stdout=out, stderr=StringIO())
    raw = out.getvalue().strip()
    assert token_authenticate(raw) == alice
    assert ApiToken.objects.get(user=alice).name == "laptop"


def test_it_refuses_an_unknown_user(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("create_api_token", "nobody", stdout=StringIO(), stderr=StringIO())


def test_it_writes_the_demo_tokens(db, tmp_path):
    path = tmp_path / "tokens.json"
    call_command("seed_demo", "--tokens", str(path), stdout=StringIO())
    tokens = json.loads(path.read_text())
    assert set(tokens) == {"admin", "alice", "bob", "carol", "mallory"}
    assert token_authenticate(tokens["carol"]).username == "carol"
    call_command("seed_demo", "--tokens", str(path), stdout=StringIO())
    again = json.loads(path.read_text())
    assert token_authenticate(again["carol"]).username == "carol"


# The profile page


def test_it_lists_only_my_tokens(alice, bob, alice_client):
    token_create(actor=alice, user=alice, name="mine")
    token_create(actor=bob, user=bob, name="bobs")
    page = alice_client.get(reverse("catalog:tokens")).content.decode()
    assert "mine" in page and "bobs" not in page


def test_it_shows_a_new_token_once_after_a_redirect(alice, alice_client):
    response = alice_client.post(reverse("catalog:token-create"), {"name": "ci"})
    assert (response.status_code, response["Location"]) == (302, reverse("catalog:tokens"))
    response = alice_client.get(reverse("catalog:tokens"))
    raw = response.context["plaintext"]
    assert raw in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    assert token_authenticate(raw) == alice
    # A reload shows it no more, and makes no second token (post/redirect/get).
    assert raw not in alice_client.get(reverse("catalog:tokens")).content.decode()
    assert ApiToken.objects.filter(user=alice, name="ci").count() == 1


def test_it_revokes_my_token(alice, alice_client):
    token, raw = token_create(actor=alice, user=alice, name="ci")
    response = alice_client.post(reverse("catalog:token-revoke", args=[token.pk]))
    assert response.status_code == 302
    assert token_authenticate(raw) is None


def test_it_never_revokes_someone_elses_token(bob, alice_client):
    token, raw = token_create(actor=bob, user=bob, name="ci")
    alice_client.post(reverse("catalog:token-revoke", args=[token.pk]))
    assert token_authenticate(raw) == bob


def test_it_needs_a_login_for_the_token_page(client, db):
    assert client.get(reverse("catalog:tokens")).status_code == 302


def test_it_refuses_a_get_to_revoke(alice, alice_client):
    token, _ = token_create(actor=alice, user=alice, name="ci")
    assert alice_client.get(reverse("catalog:token-revoke", args=[token.pk])).status_code == 405


def test_it_refuses_nul_characters_in_json_with_400(api, version, alice_token):
    response = api("POST", "/orgs/acme/models/fraud/comments", alice_token, {"body": "a\x00b"})
    assert response.status_code == 400
    response = api("POST", "/orgs/acme/models/fraud/comments", alice_token, {"body": "\udb12"})
    assert response.status_code == 400


def test_it_refuses_nul_characters_in_the_url_with_400(api, version, alice_token):
    assert api("GET", "/orgs/acme/models/fra%00ud", alice_token).status_code == 400
    assert api("GET", "/orgs/acme/versions", alice_token, q="stage == \x00").status_code == 400
    # In the API's error JSON, whatever the path (config.middleware answers before any view).
    for path in ("/orgs/acme/models/fra%00ud", "/no-such-endpoint%00"):
        response = api("GET", path, alice_token)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid"
        assert "NUL" in response.json()["error"]["message"]
