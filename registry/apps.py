from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Registry"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from registry.timestamps import install_fast_timestamps

        connection_created.connect(install_fast_timestamps, dispatch_uid="fast-timestamps")
