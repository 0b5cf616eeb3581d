from celery import shared_task
from django.conf import settings

from registry.services.blobs import blob_collect, unfinished_uploads_sweep
from registry.services.members import invitation_send


@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def collect_blob(sha256: str) -> bool:
    return blob_collect(sha256=sha256)


# On beat's schedule (config/settings.py): what a server killed mid-upload left.
@shared_task(acks_late=True)
def sweep_unfinished_uploads() -> int:
    return unfinished_uploads_sweep(min_age=settings.ARTIFACT_SWEEP_AFTER)


# SMTP's errors are OSErrors: a mail server that does not answer is tried again later.
@shared_task(acks_late=True, autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_invitation(user_id: int, org_id: int, inviter: str) -> bool:
    return invitation_send(user_id=user_id, org_id=org_id, inviter=inviter)
