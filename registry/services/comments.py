from django.db import transaction

from registry import validation
from registry.errors import Invalid
from registry.models import Comment, ModelVersion, RegisteredModel
from registry.permissions import require
from registry.services.activity import event_record

MAX_COMMENT = 20_000


@transaction.atomic
def comment_add(
    *, actor, model: RegisteredModel, body: str, version: ModelVersion | None = None
) -> Comment:
    """Anyone who can view a model joins its discussion, at any lock level."""
    require(actor, model, "view")
    if version is not None and version.model_id != model.pk:
        raise Invalid("the version does not belong to this model")
    validation.short_text(body, "comment", MAX_COMMENT)
    if not body.strip():
        raise Invalid("a comment needs some text")
    comment = Comment.objects.create(model=model, version=version, author=actor, body=body)
    event_record(
        actor=actor,
        org=model.org,
        verb="comment.added",
        target=comment,
        model=model,
        version=version,
        data={"comment": body},
    )
    return comment
