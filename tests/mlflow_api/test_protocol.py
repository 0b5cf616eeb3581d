"""MLflow's wire protocol as this server speaks it, through Django's test client: every
refusal is MLflow's error JSON with a status its client reads (never HTML, never a 500 for
a refusal), unknown endpoints are ENDPOINT_NOT_FOUND, and list endpoints cost a fixed number
of queries whatever their number of rows."""

import pytest
from django.db import OperationalError

from approvals.services import request_create
from registry.services.aliases import alias_set
from registry.services.registered_models import model_create
from registry.services.versions import version_create


def _error(response) -> tuple[int, str]:
    assert response["Content-Type"] == "application/json"
    return response.status_code, response.json()["error_code"]


@pytest.mark.parametrize(
    "url",
    [
        "/mlflow/acme/api/2.0/mlflow/runs/get",
        "/mlflow/acme/ajax-api/2.0/mlflow/registered-models/get",
        "/mlflow/acme/api/2.0/mlflow/registered-models/get/",
        "/mlflow/acme",
        "/mlflow/",
    ],
)
def test_it_answers_an_unknown_endpoint_as_mlflow_does(raw, tokens, url):
    assert _error(raw("GET", url, tokens["alice"])) == (404, "ENDPOINT_NOT_FOUND")


def test_it_refuses_a_wrong_method_with_405(raw, model, tokens):
    response = raw("GET", "registered-models/create", tokens["alice"], name="x")
    assert _error(response) == (405, "ENDPOINT_NOT_FOUND")
    assert response["Allow"] == "POST"
    assert _error(raw("DELETE", "registered-models/get", tokens["alice"])) == (
        405,
        "ENDPOINT_NOT_FOUND",
    )


def test_it_answers_get_latest_versions_on_both_of_mlflows_methods(raw, model, tokens):
    for method in ("POST", "GET"):
        response = raw(
            method, "registered-models/get-latest-versions", tokens["carol"], name="fraud"
        )
        assert (response.status_code, response.json()) == (200, {"model_versions": []})


def test_it_needs_a_modelvault_token(raw, model, tokens):
    assert _error(raw("GET", "registered-models/get", name="fraud")) == (401, "UNAUTHENTICATED")
    assert _error(raw("GET", "registered-models/get", "mv_not-a-token", name="fraud")) == (
        401,
        "UNAUTHENTICATED",
    )
    basic = raw.client.get(
        "/mlflow/acme/api/2.0/mlflow/registered-models/get",
        {"name": "fraud"},
        headers={"Authorization": "Basic YWxpY2U6YWxpY2UtZGVtbw=="},
    )
    assert _error(basic) == (401, "UNAUTHENTICATED")
    assert "MLFLOW_TRACKING_TOKEN" in basic.json()["message"]


def test_it_throttles_an_address_that_sends_wrong_tokens(raw, model, tokens, settings):
    settings.API_TOKEN_FAILURE_LIMIT = 3
    for _ in range(3):
        raw("GET", "registered-models/get", "mv_wrong", name="fraud")
    # Blocked: even a good token from that address waits (api/throttle.py, shared with /api/v1).
    response = raw("GET", "registered-models/get", tokens["alice"], name="fraud")
    assert _error(response) == (429, "REQUEST_LIMIT_EXCEEDED")
    assert int(response["Retry-After"]) > 0


@pytest.mark.parametrize(
    ("method", "endpoint", "params", "expected"),
    [
        ("POST", "registered-models/create", {"name": "fraud"}, (400, "RESOURCE_ALREADY_EXISTS")),
        (
            "POST",
            "registered-models/create",
            {"name": "bad name"},
            (400, "INVALID_PARAMETER_VALUE"),
        ),
        ("POST", "registered-models/create", {}, (400, "INVALID_PARAMETER_VALUE")),
        ("GET", "registered-models/get", {"name": "nothing"}, (404, "RESOURCE_DOES_NOT_EXIST")),
        (
            "GET",
            "model-versions/get",
            {"name": "fraud", "version": "abc"},
            (400, "INVALID_PARAMETER_VALUE"),
        ),
        (
            "GET",
            "model-versions/get",
            {"name": "fraud", "version": "0"},
            (400, "INVALID_PARAMETER_VALUE"),
        ),
        (
            "GET",
            "model-versions/get",
            {"name": "fraud", "version": "99999999999999999999"},
            (400, "INVALID_PARAMETER_VALUE"),
        ),
        (
            "GET",
            "model-versions/get",
            {"name": "fraud", "version": "7"},
            (404, "RESOURCE_DOES_NOT_EXIST"),
        ),
        (
            "GET",
            "registered-models/search",
            {"max_results": "5000"},
            (400, "INVALID_PARAMETER_VALUE"),
        ),
        (
            "GET",
            "registered-models/search",
            {"page_token": "bm9wZQ"},
            (400, "INVALID_PARAMETER_VALUE"),
        ),
        (
            "GET",
            "model-versions/search",
            {"filter": "tags.`a__b` = 'x'"},
            (400, "INVALID_PARAMETER_VALUE"),
        ),
        (
            "GET",
            "model-versions/search",
            {"order_by": "stage DESC"},
            (400, "INVALID_PARAMETER_VALUE"),
        ),
        (
            "POST",
            "model-versions/create",
            {
                "name": "fraud",
                "source": "s3://x",
                "tags": [{"key": "modelvault.lock_level", "value": "open"}],
            },
            (400, "INVALID_PARAMETER_VALUE"),
        ),
        (
            "POST",
            "model-versions/create",
            {"name": "fraud", "source": "s3://x", "tags": "not a list"},
            (400, "INVALID_PARAMETER_VALUE"),
        ),
    ],
)
def test_it_answers_mlflows_error_codes_and_statuses(
    raw, model, tokens, method, endpoint, params, expected
):
    assert _error(raw(method, endpoint, tokens["alice"], **params)) == expected


def test_it_answers_permission_and_visibility_with_403_and_404(raw, model, tokens):
    params = {"name": "fraud", "description": "mine"}
    assert _error(raw("PATCH", "registered-models/update", tokens["carol"], **params)) == (
        403,
        "PERMISSION_DENIED",
    )
    assert _error(raw("PATCH", "registered-models/update", tokens["mallory"], **params)) == (
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    model.refresh_from_db()
    assert model.description == "Card fraud scoring"


def test_it_answers_a_lock_with_409_invalid_state_not_a_500(raw, model, cast, tokens):
    version_create(actor=cast.alice, model=model, lock_level="closed")
    response = raw("DELETE", "model-versions/delete", tokens["admin"], name="fraud", version="1")
    assert _error(response) == (409, "INVALID_STATE")
    assert "closed" in response.json()["message"]


def test_it_refuses_a_body_that_is_not_json(raw, model, tokens):
    response = raw.client.post(
        "/mlflow/acme/api/2.0/mlflow/registered-models/create",
        "{not json",
        content_type="application/json",
        headers={"Authorization": f"Bearer {tokens['alice']}"},
    )
    assert _error(response) == (400, "INVALID_PARAMETER_VALUE")


def test_it_refuses_an_unstorable_url_in_mlflows_json(raw, model, tokens):
    response = raw("GET", "registered-models/get", tokens["alice"], name="fr\x00aud")
    assert _error(response) == (400, "INVALID_PARAMETER_VALUE")


def test_it_answers_a_defect_in_json_too(raw, model, tokens, monkeypatch):
    def broken(model):
        raise RuntimeError("a defect")

    monkeypatch.setattr("mlflow_api.registered_models.model_json", broken)
    response = raw("GET", "registered-models/get", tokens["alice"], name="fraud")
    assert _error(response) == (500, "INTERNAL_ERROR")
    assert "a defect" not in response.json()["message"]


def _populate(cast, rows: int) -> None:
    for i in range(rows):
        model = model_create(actor=cast.alice, org=cast.acme, name=f"m{i:03}", tags={"k": "v"})
        first = version_create(actor=cast.alice, model=model, tags={"k": "v"})
        version_create(actor=cast.alice, model=model, tags={"k": "v"})
        alias_set(actor=cast.alice, model=model, name="champion", version=first)
        request_create(actor=cast.alice, version=first, to_stage="staging")


@pytest.mark.parametrize("rows", [5, 50])
@pytest.mark.parametrize(
    ("endpoint", "params", "queries"),
    [
        # token (and its last use), the org with the caller's role, the page's ids, those
        # models with their aliases, the newest version of each of their stages
        # (mlflow_api/sql.py)
        ("registered-models/search", {"filter": "tags.k = 'v'", "max_results": "100"}, 6),
        # token (and its last use), the org with the caller's role, the page's ids, those
        # versions with their aliases and pending requests
        ("model-versions/search", {"filter": "name LIKE 'm%' and tags.k = 'v'"}, 5),
    ],
)
def test_it_searches_in_a_fixed_number_of_queries(
    raw, cast, tokens, rows, endpoint, params, queries, django_assert_max_num_queries
):
    _populate(cast, rows)
    with django_assert_max_num_queries(queries):
        response = raw("GET", endpoint, tokens["carol"], **params)
    assert response.status_code == 200
    body = response.json()
    found = body.get("registered_models") or body.get("model_versions")
    assert len(found) == rows * (1 if endpoint.startswith("registered") else 2)
    if endpoint.startswith("registered"):
        assert all(m["aliases"] == [{"alias": "champion", "version": "1"}] for m in found)
        assert all(len(m["latest_versions"]) == 1 for m in found)
    else:
        pending = [
            v for v in found if "modelvault.pending_request" in {t["key"] for t in v["tags"]}
        ]
        assert len(pending) == rows


@pytest.mark.parametrize(
    ("method", "endpoint", "params", "queries"),
    [
        # token (and its last use), the model with the caller's access, the model with its
        # aliases, the newest version of each of its stages
        ("GET", "registered-models/get", {"name": "m000"}, 5),
        # token (and its last use), the model with the caller's access, the version that
        # the alias points at with its aliases and pending request
        ("GET", "registered-models/alias", {"name": "m000", "alias": "champion"}, 4),
        # token (and its last use), the model with the caller's access, the newest version
        # of each of its stages
        ("POST", "registered-models/get-latest-versions", {"name": "m000"}, 4),
        # token (and its last use), the version with the caller's access, the version with
        # its aliases and pending request
        ("GET", "model-versions/get", {"name": "m000", "version": "1"}, 4),
        # token (and its last use), the org with the caller's role, the model with the
        # caller's access, a page of its versions with their aliases and pending requests
        ("GET", "model-versions/search", {"filter": "name = 'm000'"}, 5),
    ],
)
def test_it_reads_a_model_or_a_version_in_a_fixed_number_of_queries(
    raw, cast, tokens, method, endpoint, params, queries, django_assert_max_num_queries
):
    _populate(cast, 1)
    with django_assert_max_num_queries(queries):
        response = raw(method, endpoint, tokens["carol"], **params)
    assert response.status_code == 200
    body = response.json()
    shown = body.get("registered_model") or body.get("model_version")
    if shown is None:
        shown = body["model_versions"][0]
    assert shown["name"] == "m000"


def test_it_refuses_a_body_over_the_limit_with_413(raw, model, tokens, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = raw("POST", "registered-models/create", tokens["alice"], name="x" * 200)
    assert _error(response) == (413, "INVALID_PARAMETER_VALUE")


def test_it_asks_to_retry_while_the_database_is_busy(raw, model, tokens, monkeypatch):
    def busy(model):
        raise OperationalError("database is locked")

    monkeypatch.setattr("mlflow_api.registered_models.model_json", busy)
    response = raw("GET", "registered-models/get", tokens["alice"], name="fraud")
    assert _error(response) == (503, "TEMPORARILY_UNAVAILABLE")
    assert int(response["Retry-After"]) > 0


def test_a_search_by_one_models_name_finds_what_the_org_wide_search_finds(raw, cast, tokens):
    """`name = '...'` reads that model as a fetch does (mlflow_api/model_versions.py); the
    answer is the one the org-wide search gives: nothing of a model the caller may not
    view, in this org or another."""
    from registry.services.registered_models import model_update

    _populate(cast, 3)
    secret = model_create(actor=cast.admin, org=cast.acme, name="secret", tags={"k": "v"})
    version_create(actor=cast.admin, model=secret, tags={"k": "v"})
    model_update(actor=cast.admin, model=secret, visibility="private")

    def names(token: str, text: str, path: str = "model-versions/search") -> list:
        response = raw("GET", path, token, filter=text)
        assert response.status_code == 200, response.content
        return sorted((v["name"], v["version"]) for v in response.json()["model_versions"])

    for who in ("carol", "admin"):
        for name in ("m001", "secret", "nothing"):
            fast = names(tokens[who], f"name = '{name}'")
            general = names(tokens[who], f"name LIKE '{name}'")
            assert fast == general
    assert names(tokens["carol"], "name = 'secret'") == []
    assert names(tokens["admin"], "name = 'secret'") == [("secret", "1")]
    assert names(tokens["admin"], "name = 'm001' and tags.k = 'v'") == [
        ("m001", "1"),
        ("m001", "2"),
    ]
    other = "/mlflow/globex/api/2.0/mlflow/model-versions/search"
    assert names(tokens["mallory"], "name = 'm001'", other) == []

    def pages(text: str) -> list:
        found, token = [], ""
        while True:
            params = {"filter": text, "max_results": "1", "page_token": token}
            body = raw("GET", "model-versions/search", tokens["carol"], **params).json()
            found.append([v["version"] for v in body["model_versions"]])
            token = body.get("next_page_token")
            if not token:
                return found

    assert pages("name = 'm001'") == pages("name LIKE 'm001'") == [["2"], ["1"]]
