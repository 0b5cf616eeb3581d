from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "catalog"
    verbose_name = "Catalog"

    def ready(self) -> None:
        from axes.signals import user_locked_out

        from catalog.views.login import log_lockout

        # A log line, not domain logic: lockouts belong to no organization's activity log.
        user_locked_out.connect(log_lockout, dispatch_uid="catalog.log_lockout")
