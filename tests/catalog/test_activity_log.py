"""The activity log as the UI shows it (model tab, version page, home): comments' Markdown
rendered and sanitised, and each event's target linked to its page."""

import pytest
from django.urls import reverse

from registry.services.comments import comment_add
from registry.services.versions import version_create

pytestmark = pytest.mark.django_db


def test_it_renders_comment_markdown_sanitised_on_the_model_activity_tab(
    carol_client, model, alice, carol
):
    version = version_create(actor=alice, model=model)
    comment_add(
        actor=carol, model=model, version=version, body="**odd** drift\n<script>x=1</script>"
    )
    url = reverse("catalog:model", args=["acme", "fraud"]) + "?tab=activity"
    body = carol_client.get(url).content.decode()
    assert "<strong>odd</strong> drift" in body
    assert "<script>x=1" not in body and "**odd**" not in body
    version_url = reverse("catalog:version", args=["acme", "fraud", version.number])
    assert f'<a href="{version_url}">' in body


def test_it_links_targets_on_the_version_page_and_home(alice_client, model, alice):
    version = version_create(actor=alice, model=model)
    comment_add(actor=alice, model=model, version=version, body="_see_ the run")
    version_url = reverse("catalog:version", args=["acme", "fraud", version.number])
    page = alice_client.get(version_url).content.decode()
    assert "<em>see</em> the run" in page
    assert f'<td><a href="{version_url}">' in page
    home = alice_client.get(reverse("catalog:home")).content.decode()
    assert f'<a href="{version_url}">' in home
