"""The reads of a review as plain SQL (STYLE.md, "Plain over clever"): a request's model with
the reviewer's access, and the request locked with what deciding it reads. Every approval,
rejection and cancellation makes both; built by the ORM (two select_related querysets over
four tables each) they cost more than the rest of the review's reads together.
tests/approvals/test_sql.py pins each to the queryset it stands for, on SQLite and
PostgreSQL: change them together.
"""

from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS, connections

from approvals.models import StageChangeRequest
from registry.models import Branch, ModelVersion, Organization, RegisteredModel
from registry.sql import Shape, access_columns, make_parts, run

_MODEL, _ORG = Shape(RegisteredModel, "m"), Shape(Organization, "o")
REQUEST_MODEL = f"""
    SELECT {_MODEL.columns}, {_ORG.columns}, {access_columns(model="m.id", org="m.org_id")}
    FROM approvals_stagechangerequest q
    JOIN registry_registeredmodel m ON m.id = q.model_id
    JOIN registry_organization o ON o.id = m.org_id
    WHERE q.id = %s
"""


def request_model_with_access(
    user_id: int | None, request_id: int
) -> tuple[RegisteredModel, str | None, int] | None:
    """The model of the request `request_id`, with its org (StageChangeRequest.objects
    .select_related("model__org"), its model), and the role and grants of the user
    `user_id` on it (registry.sql.model_with_access); None when there is no such request."""
    rows = run(REQUEST_MODEL, [user_id, user_id, user_id, request_id])
    if not rows:
        return None
    row = rows[0]
    model = _MODEL.make(row, 0)
    model.org = _ORG.make(row, _MODEL.width)
    return model, row[-2], row[-1]


_REQUEST, _VERSION = Shape(StageChangeRequest, "q"), Shape(ModelVersion, "v")
_BRANCH, _FROM = Shape(Branch, "b"), Shape(ModelVersion, "af")
_REQUESTER = Shape(get_user_model(), "ru")
_PARTS = (_REQUEST, _VERSION, _BRANCH, _FROM, _REQUESTER)
REQUEST = f"""
    SELECT {", ".join(part.columns for part in _PARTS)}
    FROM approvals_stagechangerequest q
    JOIN registry_modelversion v ON v.id = q.version_id
    JOIN registry_branch b ON b.id = v.branch_id
    LEFT JOIN registry_modelversion af ON af.id = q.alias_from_id
    LEFT JOIN auth_user ru ON ru.id = q.requester_id
    WHERE q.id = %s
"""


def request_locked(request_id: int, model: RegisteredModel) -> StageChangeRequest | None:
    """The request `request_id` under its row lock (PostgreSQL; SQLite's writers already
    run one at a time), with its version and the version's branch, the version its alias
    pointed at and its requester: StageChangeRequest.objects.select_for_update(of=("self",))
    .select_related("version__branch", "alias_from", "requester"). `model` is the request's
    (with its org, as the caller read it: a request never moves), given to the request and
    its version. None when there is no such request."""
    connection = connections[DEFAULT_DB_ALIAS]
    lock = " FOR UPDATE OF q" if connection.features.has_select_for_update_of else ""
    rows = run(REQUEST + lock, [request_id])
    if not rows:
        return None
    request, version, branch, alias_from, requester = make_parts(rows[0], _PARTS)
    version.branch, version.model = branch, model
    request.version, request.alias_from, request.requester = version, alias_from, requester
    request.model = model
    return request
