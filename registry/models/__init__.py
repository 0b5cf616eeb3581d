from registry.models.activity import ActivityChain, ActivityEvent
from registry.models.aliases import Alias
from registry.models.artifacts import Artifact, Blob
from registry.models.catalog import (
    Branch,
    Comment,
    ModelGroupPermission,
    ModelUserPermission,
    RegisteredModel,
    Watch,
)
from registry.models.choices import (
    LockLevel,
    ModelPermission,
    Role,
    Stage,
    TokenScope,
    Visibility,
)
from registry.models.flags import Flag, Severity
from registry.models.orgs import Membership, Organization, ServiceAccount, Team
from registry.models.tokens import ApiToken
from registry.models.versions import (
    FREE_METADATA_FIELDS,
    INGREDIENT_FIELDS,
    ModelVersion,
    VersionParent,
    VersionSequence,
)

__all__ = [
    "FREE_METADATA_FIELDS",
    "INGREDIENT_FIELDS",
    "ActivityChain",
    "ActivityEvent",
    "Alias",
    "ApiToken",
    "Artifact",
    "Blob",
    "Branch",
    "Comment",
    "Flag",
    "LockLevel",
    "Membership",
    "ModelGroupPermission",
    "ModelPermission",
    "ModelUserPermission",
    "ModelVersion",
    "Organization",
    "RegisteredModel",
    "Role",
    "ServiceAccount",
    "Severity",
    "Stage",
    "Team",
    "TokenScope",
    "VersionParent",
    "VersionSequence",
    "Visibility",
    "Watch",
]
