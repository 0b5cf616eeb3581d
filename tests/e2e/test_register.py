"""Registering and editing in a real browser (SPEC 4.1): a model with tags and sharing, a
version with rows added in place, files uploaded through htmx with their progress, a refusal
shown on the form without leaving it, and an alias set from the version page. Nothing is
refused by the Content-Security-Policy on the way."""

import hashlib

import pytest
from playwright.sync_api import expect

from registry.models import ModelVersion, RegisteredModel
from tests.e2e.pages import login, violations

pytestmark = pytest.mark.django_db(transaction=True)

WEIGHTS = bytes(range(256)) * 4096  # 1 MiB


def test_it_registers_a_model_and_a_version_with_files(browser, live_server, cast):
    alice = login(browser, live_server, "alice")
    try:
        alice.goto(f"{live_server.url}/orgs/acme/models/")
        alice.click("a:has-text('New model')")
        alice.fill("#id_name", "churn")
        alice.fill("#id_description", "Who leaves, and when")
        # "More rows" adds a row in place (no reload): the fourth tag row appears.
        assert alice.locator("#tags-rows tr").count() == 3
        alice.click("button[data-add-row=tags]")
        assert alice.locator("#tags-rows tr").count() == 4
        alice.fill("#id_tags-3-key", "team")
        alice.fill("#id_tags-3-value", "retention")
        alice.fill("#id_share-0-who", "bob")
        alice.select_option("#id_share-0-permission", "approve")
        alice.click("#model-form button:has-text('Register the model')")
        expect(alice.locator(".messages")).to_contain_text("Model churn registered.")
        assert alice.locator(".page-head .tags").inner_text() == "team: retention"

        alice.click("a:has-text('Register a version')")
        alice.fill("#id_label", "1.0.0")
        alice.fill("#id_params-0-key", "lr")
        alice.fill("#id_params-0-value", "0.01")
        alice.fill("#id_metrics-0-key", "auc")
        alice.fill("#id_metrics-0-value", "0.93")
        files = [
            {"name": "model.bin", "mimeType": "application/octet-stream", "buffer": WEIGHTS},
            {"name": "config.json", "mimeType": "application/json", "buffer": b"{}"},
        ]
        # A wrong checksum first: the form comes back in place with the refusal.
        alice.set_input_files("#id_files", files)
        alice.fill("#id_checksums", f"{'0' * 64}  model.bin")
        alice.click("#version-form button:has-text('Register the version')")
        expect(alice.locator("#form-errors")).to_contain_text("checksum mismatch")
        assert alice.url.endswith("/orgs/acme/models/churn/versions/new/")
        assert alice.input_value("#id_label") == "1.0.0"
        assert not ModelVersion.objects.filter(model__name="churn").exists()

        alice.set_input_files("#id_files", files)
        alice.fill("#id_checksums", f"{hashlib.sha256(WEIGHTS).hexdigest()}  model.bin")
        alice.click("#version-form button:has-text('Register the version')")
        alice.wait_for_url(f"{live_server.url}/orgs/acme/models/churn/versions/1/")
        expect(alice.locator(".messages")).to_contain_text("Version 1 registered.")
        artifacts = alice.locator("section[aria-labelledby=artifacts-heading]").inner_text()
        assert "model.bin" in artifacts and hashlib.sha256(WEIGHTS).hexdigest() in artifacts

        # An alias, set from the version page.
        alice.fill("#alias-name", "candidate")
        alice.click("#alias-set-form button[type=submit]")
        expect(alice.locator(".messages")).to_contain_text("@candidate points at version 1.")
        assert "this version" in alice.locator("table.aliases").inner_text()
        assert violations(alice) == []
    finally:
        alice.context.close()

    model = RegisteredModel.objects.get(name="churn")
    version = ModelVersion.objects.get(model=model)
    assert (model.tags, version.params, version.metrics) == (
        {"team": "retention"},
        {"lr": 0.01},
        {"auc": 0.93},
    )
    assert sorted(version.artifacts.values_list("path", flat=True)) == ["config.json", "model.bin"]


def test_it_shows_the_uploads_progress(browser, live_server, cast, model):
    alice = login(browser, live_server, "alice")
    seen: list = []
    try:
        alice.goto(f"{live_server.url}/orgs/acme/models/fraud/versions/new/")
        # What the page's progress bar shows, reported after forms.js has updated it.
        alice.expose_function("reportProgress", lambda hidden, value: seen.append((hidden, value)))
        alice.evaluate(
            """document.addEventListener("htmx:xhr:progress", () => {
                const bar = document.querySelector("#upload-progress");
                window.reportProgress(bar.hidden, bar.value);
            })"""
        )
        alice.set_input_files(
            "#id_files",
            [{"name": "big.bin", "mimeType": "application/octet-stream", "buffer": WEIGHTS * 8}],
        )
        alice.click("#version-form button:has-text('Register the version')")
        alice.wait_for_url(f"{live_server.url}/orgs/acme/models/fraud/versions/1/")
        assert violations(alice) == []
    finally:
        alice.context.close()
    assert seen and seen[-1] == (False, 100)
    assert ModelVersion.objects.get(model=model).artifacts.get().blob.size == len(WEIGHTS) * 8
