"""The one hook by which the domain hands committed events on (SPEC 3.8).

`activity_committed` is sent once per activity event, after the transaction that recorded
it has committed, with `event_id`, `verb` and `event` (the ActivityEvent as recorded, whose
data a listener may read without reading the row again). The registry never imports its
listeners: the notifications app connects to it in its AppConfig.ready(). The committed
event row is the outbox; a listener that fails leaves it to the periodic sweep.
"""

from django.dispatch import Signal

activity_committed = Signal()
