"""seed_demo gives the demo versions in every stage through the approval workflow."""

import pytest
from django.core.management import call_command

from approvals.models import RequestStatus, StageChangeRequest
from registry.models import ActivityEvent, Alias, ModelVersion, Stage

pytestmark = pytest.mark.django_db


def test_it_seeds_every_stage_aliases_and_a_pending_request(capsys):
    call_command("seed_demo")
    call_command("seed_demo")  # idempotent
    stages = set(ModelVersion.objects.values_list("stage", flat=True))
    assert stages == set(Stage.values)
    pending = StageChangeRequest.objects.pending().select_related("requester").get()
    assert (pending.requester.username, pending.to_stage) == ("alice", Stage.STAGING)
    assert StageChangeRequest.objects.filter(status=RequestStatus.APPROVED).count() == 5
    assert not ActivityEvent.objects.filter(
        verb="stage.approved", actor__username="alice"
    ).exists()  # nobody approved their own request
    champion = Alias.objects.select_related("version").get(name="champion")
    assert (champion.version.number, champion.version.stage, champion.protected) == (
        2,
        Stage.PRODUCTION,
        True,
    )
