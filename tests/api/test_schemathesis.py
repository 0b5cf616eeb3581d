"""Property-based fuzzing of the API from its own OpenAPI document (issue 5): with a valid
token, no generated request may cause a server error or a response that breaks the schema."""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from api.urls import api
from notifications.models import Delivery
from notifications.services import event_dispatch, webhook_create
from registry.models import ActivityEvent
from registry.services.comments import comment_add

MAX_EXAMPLES = 4


# pytest-django has set Django up before test modules are collected.
schema = schemathesis.openapi.from_dict(api.get_openapi_schema(path_prefix="/api/v1/"))


@pytest.fixture
def delivery(settings, model, alice) -> Delivery:
    """A webhook of the demo model with one delivery, so that webhook paths reach the
    services; its target refuses connections at once, so a replay fails fast."""
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.WEBHOOK_TIMEOUT = 2
    hook = webhook_create(
        actor=alice, org=model.org, model=model, url="http://127.0.0.1:9/", events=["comment.added"]
    )
    comment_add(actor=alice, model=model, body="for the webhook")
    event_dispatch(event_id=ActivityEvent.objects.get(verb="comment.added").pk)
    return Delivery.objects.get(webhook=hook)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_it_answers_any_request_without_a_server_error(
    case, transactional_db, live_server, version, delivery, alice_token
):
    # Aim at the demo model, so that requests get past the 404 of a random name and reach
    # the services; everything else (bodies, queries, other path parts) stays generated.
    known = {
        "org": "acme",
        "model": "fraud",
        "number": 1,
        "webhook_id": delivery.webhook_id,
        "delivery_id": delivery.pk,
    }
    for name, value in known.items():
        if case.path_parameters and name in case.path_parameters:
            case.path_parameters[name] = value
    case.call_and_validate(
        base_url=live_server.url,
        headers={"Authorization": f"Bearer {alice_token}"},
        checks=[not_a_server_error, response_schema_conformance],
    )
