"""Stage changes to request (SPEC 3.3, 3.4), each with an optional comment for reviewers.

request = version.change_stage(Staging("Undergoing final testing."))
version.change_stage(Production("Ship it", archive_existing=True))
"""


class StageChange:
    stage = ""

    def __init__(self, comment: str = "", *, archive_existing: bool = False):
        if not isinstance(comment, str):
            raise TypeError("a stage change comment is text")
        self.comment = comment
        self.archive_existing = archive_existing

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.comment!r})"

    def payload(self) -> dict:
        return {
            "stage": self.stage,
            "comment": self.comment,
            "archive_existing": self.archive_existing,
        }


class Development(StageChange):
    stage = "development"


class Staging(StageChange):
    stage = "staging"


class Production(StageChange):
    """`archive_existing=True` archives the versions now in production when this one lands."""

    stage = "production"


class Archived(StageChange):
    stage = "archived"


STAGES = {cls.stage: cls for cls in (Development, Staging, Production, Archived)}
