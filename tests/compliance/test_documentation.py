"""The technical documentation of a version along Annex IV (SPEC 3.10): every section for a
fully described version, the gaps of a bare one, lineage as the viewer sees it, bounded
queries and Markdown that user text cannot break."""

import io
import json
import re

import markdown as markdown_lib
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals.services import request_approve, request_create
from compliance import (
    md_inline,
    render_json,
    render_markdown,
    technical_documentation,
)
from registry.services.comments import comment_add
from registry.services.flags import flag_raise, flag_resolve
from registry.services.registered_models import model_create, model_update
from registry.services.versions import version_create, version_set_lock_level

pytestmark = pytest.mark.django_db

SECTIONS = [
    "identity",
    "description",
    "architecture",
    "data",
    "training",
    "history",
    "approvals",
    "lock",
    "flags",
    "outside",
]
# What the registry cannot know: missing for every version, with their Annex IV points.
OUTSIDE = {
    "outside.human_oversight": "2(e)",
    "outside.cybersecurity": "2(h)",
    "outside.capabilities_and_limitations": "3",
    "outside.metrics_appropriateness": "4",
    "outside.risk_management": "5",
    "outside.standards": "7",
    "outside.eu_declaration": "8",
    "outside.post_market_plan": "9",
}
BARE_GAPS = {
    "identity.label",
    "description.intended_purpose",
    "description.design",
    "description.version_description",
    "description.methods",
    "architecture.framework",
    "architecture.flavor",
    "architecture.python_version",
    "architecture.requirements",
    "architecture.artifacts",
    "architecture.input_schema",
    "architecture.output_schema",
    "data.datasets",
    "data.code_version",
    "data.experiment",
    "data.source_run",
    "training.params",
    "training.metrics",
    "approvals.requests",
    "approvals.reviews",
    *OUTSIDE,
}


def build_documented_version(model, *, admin, alice, bob, carol):
    """fraud v2 with every ingredient, a parent, an approved request, a closing lock, a
    comment and two flags (one resolved), all through the real services."""
    model_update(actor=admin, model=model, readme="Scores card transactions for fraud.")
    first = version_create(
        actor=alice,
        model=model,
        params={"lr": 0.1, "depth": 6},
        metrics={"auc": 0.88},
        artifacts={"model.bin": io.BytesIO(b"weights v1")},
    )
    version = version_create(
        actor=alice,
        model=model,
        label="1.1.0",
        description="Gradient boosted trees",
        readme="Trained on a year of transactions; tuned with 5-fold CV.",
        tags={"team": "risk"},
        framework="sklearn",
        flavor="sklearn-pickle",
        environment={
            "python_version": "3.11",
            "requirements": "scikit-learn==1.5\nnumpy==2.0",
            "variables": {"OMP_NUM_THREADS": "4"},
        },
        datasets=[
            {"name": "tx-2025", "uri": "s3://data/tx", "version": "7", "digest": "sha256:ab12"}
        ],
        code_version={"repo": "git@example.com:fraud", "commit": "abc123", "path": "train.py"},
        params={"lr": 0.05, "depth": 6},
        metrics={"auc": 0.93},
        input_schema={"type": "object", "properties": {"amount": {"type": "number"}}},
        output_schema={"type": "number"},
        experiment_id="exp-42",
        source_run="mlflow://runs/42",
        parents=[first],
        artifacts={"model.bin": io.BytesIO(b"weights v2"), "card.md": io.BytesIO(b"card")},
    )
    request = request_create(actor=alice, version=version, to_stage="staging", comment="for QA")
    request_approve(actor=bob, request=request, comment="metrics ok")
    version = version_set_lock_level(actor=alice, version=version, level="closed")
    comment_add(actor=carol, model=model, version=version, body="Looks calibrated.")
    flag_raise(actor=carol, version=version, severity="high", summary="Drift on EU traffic")
    resolved = flag_raise(actor=carol, version=version, severity="low", summary="Old alert")
    flag_resolve(actor=alice, flag=resolved, resolution="fixed upstream")
    return version


@pytest.fixture
def documented(model, admin, alice, bob, carol):
    return build_documented_version(model, admin=admin, alice=alice, bob=bob, carol=carol)


def items(doc) -> dict:
    return {f"{s['id']}.{i['id']}": i for s in doc["sections"] for i in s["items"]}


def rows(doc, key) -> list:
    return items(doc)[key]["value"]["rows"]


def test_it_documents_every_annex_iv_section_of_a_fully_described_version(documented, alice):
    doc = technical_documentation(documented, viewer=alice)
    assert [s["id"] for s in doc["sections"]] == SECTIONS
    assert all(s["annex"].startswith("Annex IV ") and s["title"] for s in doc["sections"])
    # Only what no registry can know is missing.
    assert set(doc["missing"]) == set(OUTSIDE)
    found = items(doc)
    assert {key: found[key]["annex"] for key in OUTSIDE} == OUTSIDE
    assert (doc["digest"], doc["number"], doc["generated_at"][-1]) == (
        documented.digest,
        2,
        "Z",
    )
    assert found["identity.digest"]["value"] == documented.digest
    assert found["identity.label"]["value"] == "1.1.0"
    assert found["identity.owner"]["value"] == "admin"
    assert found["description.design"]["value"] == "Scores card transactions for fraud."
    assert found["architecture.framework"]["value"] == "sklearn"
    assert found["architecture.requirements"]["value"] == "scikit-learn==1.5\nnumpy==2.0"
    artifacts = {row[0]: row[1:] for row in rows(doc, "architecture.artifacts")}
    blob = documented.artifacts.get(path="model.bin").blob
    assert artifacts["model.bin"] == [blob.size, blob.sha256]
    assert rows(doc, "data.datasets") == [["tx-2025", "s3://data/tx", "7", "sha256:ab12"]]
    assert found["data.code_version"]["value"]["commit"] == "abc123"
    assert rows(doc, "data.parents")[0][:2] == ["fraud", 1]
    assert found["training.metrics"]["value"] == {"auc": 0.93}
    assert [row[0] for row in rows(doc, "history.versions")] == [1, 2]
    changes = {row[0]: row[1:] for row in rows(doc, "history.changes_from_previous")}
    assert changes["params.lr"] == [0.1, 0.05] and "params.depth" not in changes
    assert changes["artifact card.md"][0] is None and "framework" in changes
    events = {row[2]: row for row in rows(doc, "history.events")}
    assert events["stage.applied"][3] == "stage: unassigned → staging"
    assert events["lock.raised"][3] == "lock_level: open → closed"
    assert events["comment.added"][4] == "Looks calibrated."
    [request] = rows(doc, "approvals.requests")
    assert request[1:6] == ["stage unassigned → staging", "alice", "approved", 1, "for QA"]
    assert request[7] is not None  # decided at
    [review] = rows(doc, "approvals.reviews")
    assert review[1:4] == ["bob", "approve", "metrics ok"]
    assert found["lock.level"]["value"] == "closed"
    assert "nobody" in found["lock.who_may_change"]["value"]
    [flag] = rows(doc, "flags.open_flags")  # the resolved one is not open
    assert flag[:2] == ["high", "Drift on EU traffic"] and flag[5] == documented.digest


def test_it_marks_every_unknown_item_of_a_bare_version_missing(acme, alice):
    bare = model_create(actor=alice, org=acme, name="bare")
    version = version_create(actor=alice, model=bare)
    doc = technical_documentation(version, viewer=alice)
    assert [s["id"] for s in doc["sections"]] == SECTIONS
    assert set(doc["missing"]) == BARE_GAPS
    for key, item in items(doc).items():
        if key in BARE_GAPS:
            assert item["missing"] is True and item["value"] is None
            assert item["hint"].startswith(("not recorded: ", "not kept by the registry: "))
        else:
            assert item["missing"] is False, key
    found = items(doc)
    assert "`datasets`" in found["data.datasets"]["hint"]
    assert found["flags.open_flags"]["empty"] == "No open flags."
    assert found["history.changes_from_previous"]["empty"] == "No earlier version on this branch."


def test_it_marks_an_unset_owner_missing(model, admin, alice):
    model_update(actor=admin, model=model, owner=None)
    doc = technical_documentation(version_create(actor=alice, model=model), viewer=alice)
    assert "identity.owner" in doc["missing"]


def test_it_keeps_parents_the_viewer_may_not_view_out(acme, admin, carol, model):
    secret = model_create(actor=admin, org=acme, name="secret", visibility="private")
    parent = version_create(actor=admin, model=secret)
    child = version_create(actor=admin, model=model, parents=[parent])
    assert rows(technical_documentation(child, viewer=admin), "data.parents")[0][0] == "secret"
    for_carol = technical_documentation(child, viewer=carol)
    assert rows(for_carol, "data.parents") == []
    assert "secret" not in render_json(for_carol)
    assert rows(technical_documentation(parent, viewer=admin), "data.children")[0][0] == "fraud"


def _queries(version, viewer) -> int:
    with CaptureQueriesContext(connection) as captured:
        technical_documentation(version, viewer=viewer)
    return len(captured)


def _activity(version, *, alice, bob, carol, n: int, to_stage: str) -> None:
    for i in range(n):
        comment_add(actor=carol, model=version.model, version=version, body=f"comment {i}")
        flag_raise(actor=carol, version=version, severity="low", summary=f"flag {i}")
        version_create(actor=alice, model=version.model)
    request = request_create(actor=alice, version=version, to_stage=to_stage, comment="go")
    request_approve(actor=bob, request=request)


def test_it_reads_in_a_constant_number_of_queries(model, alice, bob, carol):
    version_create(actor=alice, model=model, artifacts={"a": io.BytesIO(b"a")})
    version = version_create(actor=alice, model=model, artifacts={"a": io.BytesIO(b"b")})
    _activity(version, alice=alice, bob=bob, carol=carol, n=1, to_stage="development")
    few = _queries(version, alice)
    _activity(version, alice=alice, bob=bob, carol=carol, n=10, to_stage="staging")
    assert _queries(version, alice) == few
    assert few <= 11  # version, artifacts, lineage, history, events, approvals, flags


def test_it_renders_json_that_is_the_document(documented, alice):
    doc = technical_documentation(documented, viewer=alice)
    assert json.loads(render_json(doc)) == doc


def _html_of_markdown(text: str) -> str:
    return markdown_lib.markdown(text, extensions=["fenced_code", "tables"])


def test_it_renders_markdown_with_every_section_item_and_gap(documented, alice):
    doc = technical_documentation(documented, viewer=alice)
    html = _html_of_markdown(render_markdown(doc))
    assert html.count("<h2>") == len(SECTIONS)
    assert html.count("<h3>") == len(items(doc))
    assert html.count("<strong>Missing</strong>") == len(doc["missing"])
    assert "<td>Drift on EU traffic</td>" in html
    assert "Annex IV 9" in html and documented.digest in html


def test_it_escapes_user_text_so_the_markdown_keeps_its_structure(acme, alice):
    hostile = "## Injected heading\n| a | b |\n<script>alert(1)</script>\n```\n- list"
    bare = model_create(actor=alice, org=acme, name="hostile", description="``` *x*")
    version = version_create(
        actor=alice,
        model=bare,
        description=hostile,
        framework="# torch <b>",
        tags={"team|x": "risk | ops\n## also injected"},
        datasets=[{"name": "d|1", "uri": "[link](javascript:alert(1))"}],
    )
    doc = technical_documentation(version, viewer=alice)
    text = render_markdown(doc)
    assert "\n```` text\n" not in text and "\n````text\n" in text  # a longer fence
    html = _html_of_markdown(text)
    assert html.count("<h2>") == len(SECTIONS)
    assert html.count("<h3>") == len(items(doc))
    assert "Injected heading</h2>" not in html and "also injected</h2>" not in html
    assert "<script>" not in html and "<b>" not in html and 'href="javascript' not in html
    tags_table = re.search(r"<h3>Tags</h3>.*?</table>", html, re.S)[0]
    assert tags_table.count("<tr>") == 2  # the header and one row, not split by |
    assert md_inline("a|b\nc") == r"a\|b c"
