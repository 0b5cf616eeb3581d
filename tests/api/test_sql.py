"""Each plain statement of api.sql answers what the queryset it stands for answers (on the
database the suite runs on: SQLite, then PostgreSQL in CI)."""

import io

import pytest
from django.db import connection

from api import sql
from approvals.models import RequestKind, StageChangeRequest
from approvals.services import (
    alias_request_create,
    request_approve,
    request_create,
    request_reject,
)
from registry.models import Artifact, ModelVersion, VersionParent
from registry.services.aliases import alias_protect, alias_set
from registry.services.registered_models import model_create, model_update
from registry.services.versions import version_create


@pytest.fixture
def page(model, admin, alice, bob):
    """The ids of a page: versions with artifacts out of path order, parents in two models,
    a pending request with two approvals of three required, and a pending
    alias request (not a stage request); and beside it a version with all of these that
    is not on the page, and a decided request."""
    churn = model_create(actor=admin, org=model.org, name="churn", visibility="organization")
    churn_v1 = version_create(actor=admin, model=churn)
    churn_v2 = version_create(actor=admin, model=churn)
    v1 = version_create(actor=alice, model=model, artifacts={"m.bin": io.BytesIO(b"m")})
    v2 = version_create(
        actor=alice,
        model=model,
        parents=[v1, churn_v2, churn_v1],
        artifacts={"z.bin": io.BytesIO(b"z"), "a.bin": io.BytesIO(b"aa"), "m/x": io.BytesIO(b"")},
    )
    v3 = version_create(
        actor=alice,
        model=model,
        label="1.2.0",
        parents=[v2],
        tags={"cohort": "gold", "naïve": "é"},
        params={"depth": 4, "seed": 2**70, "rate": 0.1, "note": None},
        metrics={"auc": 0.91},
        datasets=[{"name": "cards", "digest": "sha256:" + "a" * 64}],
        code_version={"repo": "git@example.com:ml/fraud.git"},
        input_schema={"type": "object", "properties": {"x": {"type": "number"}}},
        environment={"python_version": "3.11"},
        framework="sklearn",
        description="gradient boosting",
        experiment_id="7",
        source_run="runs:/abc",
    )
    off_page = version_create(
        actor=alice, model=model, parents=[v1], artifacts={"o.bin": io.BytesIO(b"o")}
    )
    model_update(actor=admin, model=model, required_approvals=3)
    pending = request_create(actor=alice, version=v2, to_stage="staging")
    request_approve(actor=bob, request=pending, comment="yes")
    request_approve(actor=admin, request=pending)
    decided = request_create(actor=alice, version=v3, to_stage="development")
    request_reject(actor=bob, request=decided)
    request_create(actor=alice, version=off_page, to_stage="development")
    alias_set(actor=admin, model=model, name="champion", version=v1)
    alias_protect(actor=admin, model=model, name="champion")
    alias_request_create(actor=alice, model=model, name="champion", version=v3)
    return [v3.pk, v2.pk, v1.pk, churn_v1.pk]


def test_it_reads_a_pages_versions_as_the_queryset_does(page):
    expected = ModelVersion.objects.filter(id__in=page).values(*sql.VERSION_ROW)
    found = sql.page_versions(page)
    assert {pk: {name: row[name] for name in sql.VERSION_ROW} for pk, row in found.items()} == {
        row["id"]: row for row in expected
    }
    assert len(found) == 4
    assert found[page[0]]["params"]["seed"] == 2**70  # past orjson's integers: json reads it


def test_it_reads_a_pages_artifacts_as_the_queryset_does(page):
    found = sql.page_versions(page)
    for pk in page:
        # By path, in code point order (SQLite's; the test database's collation is C).
        expected = sorted(
            Artifact.objects.filter(version_id=pk).values_list("path", "blob__size", "blob_id")
        )
        assert found[pk]["artifacts"] == expected
    assert [path for path, _, _ in found[page[1]]["artifacts"]] == ["a.bin", "m/x", "z.bin"]


def test_it_reads_a_pages_parents_as_the_queryset_does(page):
    found = sql.page_versions(page)
    for pk in page:
        expected = list(
            VersionParent.objects.filter(child_id=pk)
            .order_by("parent__model_id", "-parent__number")
            .values_list(
                "parent_id",
                "parent__model__name",
                "parent__number",
                "parent__digest",
                "parent__model_id",
            )
        )
        assert found[pk]["parents"] == expected
    assert [(name, n) for _, name, n, _, _ in found[page[1]]["parents"]] == [
        ("fraud", 1),
        ("churn", 2),
        ("churn", 1),
    ]


def test_it_reads_a_pages_newest_pending_stage_request_as_the_queryset_does(page):
    found = sql.page_versions(page)
    for pk in page:
        expected = (
            StageChangeRequest.objects.pending()
            .filter(version_id=pk, kind=RequestKind.STAGE)
            .with_approvals()
            .order_by("-created_at", "-id")
            .values_list(
                "id",
                "to_stage",
                "requester__username",
                "approvals",
                "required_approvals",
                "created_at",
            )
            .first()
        )
        assert found[pk]["pending"] == expected
    assert found[page[1]]["pending"][3:5] == (2, 3)
    assert found[page[0]]["pending"] is None  # its request was decided


def test_it_reads_nothing_for_versions_without_any(page):
    churn_v1 = page[-1:]
    found = sql.page_versions(churn_v1)
    assert list(found) == churn_v1
    assert (found[churn_v1[0]]["artifacts"], found[churn_v1[0]]["parents"]) == ([], [])
    assert found[churn_v1[0]]["pending"] is None


def test_a_version_deleted_after_its_keys_are_read_is_left_out(model, alice):
    """A page's keys and its versions are two reads: a version deleted between them is not
    rendered (no KeyError, no 500)."""
    from api.render import versions_page_json

    kept = version_create(actor=alice, model=model)
    gone = version_create(actor=alice, model=model)
    ModelVersion.objects.filter(pk=gone.pk).delete()
    page = versions_page_json([{"id": gone.pk}, {"id": kept.pk}], alice)
    assert [item["number"] for item in page] == [kept.number]


@pytest.mark.skipif(
    connection.vendor == "postgresql", reason="PostgreSQL reads a version in one statement"
)
def test_a_version_deleted_between_the_two_reads_of_sqlite_is_not_found(model, alice, monkeypatch):
    """On SQLite a single version is fetched, then read as a page: deleted between the two,
    it answers 404, not a 500."""
    from api.render import version_read_json
    from registry.errors import NotFound

    gone = version_create(actor=alice, model=model)
    fetch = sql.version_with_access

    def fetch_then_delete(*args):
        found = fetch(*args)
        ModelVersion.objects.filter(pk=gone.pk).delete()
        return found

    monkeypatch.setattr(sql, "version_with_access", fetch_then_delete)
    with pytest.raises(NotFound, match=f"version {gone.number} of model {model.name}"):
        version_read_json(alice, "acme", model.name, number=gone.number)


def test_it_reads_a_models_versions_below_a_number_as_the_queryset_orders_them(page, model):
    """model_page_versions: page_versions of the model's versions below a number, newest
    first, at most a limit."""
    everything = sql.page_versions(list(ModelVersion.objects.values_list("id", flat=True)))
    for before, limit in [(None, 10), (None, 2), (4, 10), (3, 1), (2, 5), (1, 5)]:
        expected = ModelVersion.objects.filter(model=model).order_by("-number")
        if before is not None:
            expected = expected.filter(number__lt=before)
        ids = list(expected.values_list("id", flat=True)[:limit])
        found = sql.model_page_versions(model.pk, before, limit)
        assert found == [everything[pk] for pk in ids]
    assert [v["number"] for v in sql.model_page_versions(model.pk, None, 10)] == [4, 3, 2, 1]
    assert sql.model_page_versions(model.pk + 1000, None, 10) == []


@pytest.mark.parametrize("limit", [1, 2, 3, 50])
@pytest.mark.parametrize(
    "q",
    [
        None,
        "stage == unassigned",
        "stage == staging",
        "lock_level == open and stage == staging",
        "stage == production",
    ],
)
def test_a_models_versions_page_answers_as_a_query_that_chooses_the_ids_first(
    page, model, admin, carol, carol_token, api, limit, q
):
    """A model's versions without a query, or with plain equalities (read with the model in
    one statement), answer what the same list answers with the ids chosen first by
    compile_query, page after page, to a viewer who may not see one of the parents'
    models."""
    import json

    from api.render import versions_page
    from registry.models import RegisteredModel
    from registry.query import search_versions

    churn = RegisteredModel.objects.get(name="churn")
    model_update(actor=admin, model=churn, visibility="private")
    ModelVersion.objects.filter(model=model, number=3).update(stage="staging")
    keys = ("-number",)
    pages = {"one statement": [], "ids first": []}
    for way in pages:
        cursor = None
        while True:
            if way == "one statement":
                params = {"limit": limit, **({"q": q} if q else {})}
                if cursor:
                    params["cursor"] = cursor
                path = f"/orgs/acme/models/{model.name}/versions"
                answer = api("GET", path, carol_token, **params)
            else:
                chosen = search_versions(ModelVersion.objects.filter(model=model), q)
                answer = versions_page(chosen, carol, keys=keys, cursor=cursor, limit=limit)
            assert answer.status_code == 200
            body = json.loads(answer.content)
            pages[way].append(body)
            cursor = body["next"]
            if cursor is None:
                break
    assert pages["one statement"] == pages["ids first"]
    items = [item for body in pages["one statement"] for item in body["items"]]
    expected = {None: [4, 3, 2, 1], "stage == unassigned": [4, 2, 1], "stage == staging": [3]}
    if q in expected:
        assert [item["number"] for item in items] == expected[q]
    if q is None:
        parents = {item["number"]: [p["model"] for p in item["parents"]] for item in items}
        assert parents[2] == ["fraud"]  # churn's versions are hidden from carol


def test_it_reads_a_model_with_the_callers_access_and_its_page_as_the_two_reads_do(
    page, model, admin, alice, carol, mallory
):
    """model_with_page: registry.sql.model_with_access's answer (the model's name, org and
    visibility at least) and model_page_versions's page of that model, for callers with
    every kind of access (mallory: none), a model without such versions, and no model."""
    from registry.sql import model_with_access

    model_create(actor=admin, org=model.org, name="empty", visibility="private")
    ModelVersion.objects.filter(model=model, number=3).update(stage="staging")
    cases = [
        (name, before, limit, equal)
        for name in (model.name, "empty", "churn", "absent")
        for before, limit in [(None, 10), (None, 2), (4, 10), (2, 1)]
        for equal in ({}, {"stage": "staging"}, {"stage": "unassigned", "lock_level": "open"})
    ]
    for user in (admin, alice, carol, mallory):
        for name, before, limit, equal in cases:
            found, versions = sql.model_with_page(user.pk, "acme", name, before, limit, equal)
            expected = model_with_access(user.pk, "acme", name)
            if expected is None:
                assert (found, versions) == (None, [])
                continue
            (made, role, bits), (stored, *access) = found, expected[:3]
            assert [role, bits] == access
            fields = ("id", "name", "org_id", "visibility")
            assert [getattr(made, f) for f in fields] == [getattr(stored, f) for f in fields]
            assert versions == sql.model_page_versions(stored.pk, before, limit, equal)


def test_it_reads_a_version_with_the_callers_access_and_its_page_as_the_two_reads_do(
    page, model, admin, alice, carol, mallory
):
    """version_with_page: registry.sql.version_with_access's (or by alias
    version_by_alias_with_access's) answer (the version's id and its model's name, org and
    visibility at least) and page_versions's row of that version, for callers with every
    kind of access (mallory: none), by number and by alias, and for no such version, alias
    or model."""
    from registry.sql import version_by_alias_with_access, version_with_access

    cases = [
        *({"number": n} for n in (1, 2, 3, 4, 99)),
        *({"alias": a} for a in ("champion", "absent")),
    ]
    for user in (admin, alice, carol, mallory):
        for name in (model.name, "churn", "absent"):
            for case in cases:
                found, version = sql.version_with_page(user.pk, "acme", name, **case)
                if "alias" in case:
                    expected = version_by_alias_with_access(user.pk, "acme", name, case["alias"])
                else:
                    expected = version_with_access(user.pk, "acme", name, case["number"])
                if expected is None:
                    assert (found, version) == (None, None)
                    continue
                (made, role, bits), (stored, *access) = found, expected
                assert [role, bits] == access
                assert made.pk == stored.pk
                fields = ("id", "name", "org_id", "visibility")
                assert [getattr(made.model, f) for f in fields] == [
                    getattr(stored.model, f) for f in fields
                ]
                assert version == sql.page_versions([stored.pk])[stored.pk]
    found, version = sql.version_with_page(alice.pk, "acme", model.name, alias="champion")
    assert (version["number"], version["pending"]) == (1, None)


def test_a_page_read_in_one_statement_refuses_a_column_that_is_no_plain_equality(model):
    with pytest.raises(ValueError, match="not a column"):
        sql.model_page_versions(model.pk, None, 10, {"label": "x"})
