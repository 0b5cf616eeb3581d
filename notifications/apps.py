from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from notifications.tasks import on_activity_committed
        from registry.signals import activity_committed

        activity_committed.connect(on_activity_committed, dispatch_uid="notifications")
