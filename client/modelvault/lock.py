"""Lock levels of a version (SPEC 3.2): `open` < `redact` < `closed`.

    version.set_lock_level(Closed())     # or the instance `closed`, or the word "closed"

`open` here is the lock level, not the builtin: import it by name where you need it.
"""


class LockLevel:
    """A lock level; instances of the same level are equal and print as the API's word."""

    value = ""

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, LockLevel):
            return self.value == other.value
        if isinstance(other, str):
            return self.value == other.lower()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.value)


class Open(LockLevel):
    """Users with write change ingredients and artifacts."""

    value = "open"


class Redact(LockLevel):
    """Only org admins change ingredients and artifacts."""

    value = "redact"


class Closed(LockLevel):
    """Nobody changes ingredients or artifacts: register a new version instead."""

    value = "closed"


open = Open()  # the lock level, named as in the API: shadows the builtin here only
redact = Redact()
closed = Closed()

LEVELS = {level.value: level for level in (open, redact, closed)}


def lock_word(level: "LockLevel | type[LockLevel] | str") -> str:
    """The API's word for a level given as an instance, a class or a word."""
    if isinstance(level, type) and issubclass(level, LockLevel) and level.value:
        return level.value
    if isinstance(level, LockLevel) and level.value:
        return level.value
    if isinstance(level, str) and level.lower() in LEVELS:
        return level.lower()
    raise ValueError(f"not a lock level: {level!r} (use Open(), Redact() or Closed())")
