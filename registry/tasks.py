from celery import shared_task

from registry.services.blobs import blob_collect


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def collect_blob(sha256: str) -> bool:
    return blob_collect(sha256=sha256)
