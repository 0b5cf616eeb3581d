"""The row lock that orders the stage and alias changes of one model.

Approvals, alias moves, stage requests, branch protection and version deletes of a model
take it first, inside their own transaction, so that they queue instead of deciding on a
stale read (two reviewers approving at the same instant yield exactly one transition).
"""

from registry.errors import NotFound
from registry.models import RegisteredModel, VersionSequence


def lock_model_transitions(model: RegisteredModel) -> None:
    """Serialize the stage and alias changes of one model, inside the caller's transaction.

    The lock is the model's VersionSequence row: every approval, alias change and request
    takes it first, so that they queue instead of deciding on a stale read. The model row
    is not used because the core services lock it after a version row, and this lock is
    taken before version rows.
    """
    held = VersionSequence.objects.select_for_update().filter(pk=model.pk).values_list("pk")
    if not list(held):
        raise NotFound(f"model {model.name} not found")
