"""The history of the rows that simple-history records, declared in one place.

simple-history hands out `Model.history` (and uses it for every record it writes) through
`HistoryManager.from_queryset(HistoricalQuerySet)`, and Django makes a new class on each
call, inspecting every method of the queryset: about 0.15 ms per historical row, on every
save of a version, a model, a request, a review or an alias. The manager below makes that
class once per queryset class; simple-history takes it through its public
`history_manager` option.
"""

import functools
from typing import Any

from simple_history.manager import HistoryManager
from simple_history.models import HistoricalRecords


class OnceHistoryManager(HistoryManager):
    """simple-history's manager, whose class for a queryset class is made once."""

    @classmethod
    @functools.cache
    def from_queryset(cls, queryset_class: type, class_name: str | None = None) -> type:
        return super().from_queryset(queryset_class, class_name)


def history_records(**options: Any) -> HistoricalRecords:
    """HistoricalRecords(**options), with the manager above."""
    return HistoricalRecords(history_manager=OnceHistoryManager, **options)
