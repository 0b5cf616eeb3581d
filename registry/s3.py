"""Artifacts on S3-compatible storage (django-storages' S3Storage), where the storage API is
not enough: an upload streamed into the bucket while it is hashed, placed under its content
address without sending its bytes again, and what uploads cut off by a killed server leave
(SPEC 3.5).

An upload goes into the bucket as it arrives: a body of at most one part is sent whole
(PutObject), a larger one as a multipart upload in parts of PART_SIZE, up to PARTS_IN_FLIGHT
of them sent at once while the next is read and hashed, so the server holds a few parts
whatever the upload's size, and nothing is written to a local disk. Where it goes:

- When the client declared the content's SHA-256 (ours always does), straight to that
  content address, `blobs/ab/cd/<sha256>`. A multipart upload is invisible until it is
  completed, and it is completed (or the one-part body sent) only by `Upload.place`, once
  the body is whole and checked and the blob's row is locked (registry/services/blobs.py):
  a refused body leaves nothing under blobs/, and bytes that are already there are never
  written again.
- Otherwise to a temporary key, `<location>/uploads/<random>`, completed once the body is
  checked; `Upload.place` copies it under its content address on the server (CopyObject,
  or UploadPartCopy past COPY_PART_SIZE: the bytes are never sent again), and the temporary
  object is deleted after.

Any failure aborts the multipart upload. A server killed midway leaves a multipart upload in
progress (under uploads/ or blobs/), or a temporary object: `unfinished` finds them for
verify_artifacts and the sweep.

With ARTIFACT_DOWNLOAD_REDIRECT, a download is a redirect to `presigned_download_url`: the
object store sends the bytes, and the headers it was told to send with them.

Only public API is used: S3Storage's `connection`, `bucket_name`, `location` and
`get_object_parameters`, storages.utils' `safe_join` (how the storage names its keys),
and boto3's client.
"""

import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime

from botocore.exceptions import BotoCoreError, ClientError
from django.core.files.storage import Storage, storages
from storages.utils import safe_join

from registry.errors import RegistryError, Unavailable
from registry.hashed import Hashed

logger = logging.getLogger(__name__)

UPLOADS = "uploads"
BLOBS = "blobs"
PART_SIZE = 8 * 1024 * 1024  # S3's smallest is 5 MiB, but for the last
MAX_PARTS = 10_000  # S3's limit: a larger ARTIFACT_MAX_SIZE makes the parts larger
# Parts sent at once, each on a thread of the upload's own, while the request's next part is
# read: about two parts' time saved per three, for a part's memory each.
PARTS_IN_FLIGHT = 2
# Objects up to this size are copied by one CopyObject; larger ones in parts of this size, a
# few at once (S3 copies at most 5 GB in one request).
COPY_PART_SIZE = 256 * 1024 * 1024


@contextlib.contextmanager
def storage_errors() -> Iterator[None]:
    """Around calls to the artifact storage: on object storage, a failure because its bucket
    does not exist becomes Unavailable, with a message that names the bucket. (The
    storage's answers do not always say so: a missing object and a missing bucket are both
    404 to HEAD and GET. Only after a failure is the bucket asked after, once.)"""
    try:
        yield
    except Exception as exc:
        storage = storages["artifacts"]
        bucket = getattr(storage, "bucket_name", None)
        if bucket and not isinstance(exc, RegistryError) and not bucket_exists(storage):
            raise Unavailable(
                f"artifact storage bucket {bucket!r} does not exist: create it, or set "
                "AWS_STORAGE_BUCKET_NAME to one that does"
            ) from exc
        raise


def bucket_exists(storage: Storage) -> bool:
    """Whether an S3 storage's bucket is there (HeadBucket); True when it cannot tell."""
    try:
        storage.connection.meta.client.head_bucket(Bucket=storage.bucket_name)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        return code not in ("404", "NoSuchBucket")
    except BotoCoreError:  # the endpoint does not answer: the first failure stands
        return True
    return True


def object_key(storage: Storage, name: str) -> str:
    """The key of the storage's file `name` in the bucket (under its `location`)."""
    return safe_join(storage.location, name)


@contextlib.contextmanager
def uploaded_object(
    storage: Storage,
    chunks: Iterable[bytes],
    *,
    limit: int,
    check: Callable[[str, int], None],
    name: str | None = None,
) -> Iterator["Upload"]:
    """Send `chunks` into the bucket, hashing them: to the storage's file `name` (the content
    address the client declared), or else to a temporary object. TooLarge past `limit`
    bytes; `check(sha256, size)` refuses a complete body before its last bytes go. Yields
    the checked Upload, to be placed; after, an unplaced upload is aborted or its
    temporary object deleted, whatever happens."""
    key = object_key(storage, name or f"{UPLOADS}/{uuid.uuid4().hex}")
    upload = Upload(storage, key, temporary=name is None)
    try:
        _send(chunks, upload, limit, check)
        yield upload
    finally:
        upload.clean_up()


def _send(
    chunks: Iterable[bytes], upload: "Upload", limit: int, check: Callable[[str, int], None]
) -> None:
    # Parts of a fixed size, each in a buffer of its own while it is sent. A full part goes
    # once more bytes follow it, so that the last part is never empty; a body of at most one
    # part is sent whole.
    part_size = max(PART_SIZE, -(-limit // MAX_PARTS))
    buffer = bytearray(part_size)
    filled = 0
    hashed = Hashed(chunks, limit)
    for chunk in hashed:
        view = memoryview(chunk)
        while view:
            if filled == part_size:
                upload.send_part(buffer)
                buffer, filled = bytearray(part_size), 0
            n = min(len(view), part_size - filled)
            buffer[filled : filled + n] = view[:n]
            filled += n
            view = view[n:]
    check(hashed.digest, hashed.size)
    upload.sha256, upload.size = hashed.digest, hashed.size
    del buffer[filled:]  # the last part: the bytes it holds, not a copy of them
    upload.finish(buffer)


class Upload:
    """An upload's bytes in the bucket, at `key`: a multipart upload from its first full part
    on. A temporary one is stored whole once checked (`finish`); one at its content address
    is completed only by `place`."""

    def __init__(self, storage: Storage, key: str, *, temporary: bool):
        self.storage = storage
        self.client = storage.connection.meta.client
        self.key = key
        self.temporary = temporary
        self.where = {"Bucket": storage.bucket_name, "Key": key}
        self.extra = {
            "ContentType": "application/octet-stream",
            **storage.get_object_parameters(key),
        }
        self.checksum = checksum_args(self.client)
        self.sha256 = ""
        self.size = 0
        self.upload_id: str | None = None
        self.parts: list[dict[str, object]] = []
        self.in_flight: deque[Future] = deque()
        self.sending: ThreadPoolExecutor | None = None
        self.last: bytearray | None = None  # a one-part body at its address, until placed
        self.stored = False  # the object exists at `key`
        self.version: str | None = None

    def send_part(self, body: bytearray) -> None:
        """Send the next part, on a thread, once fewer than PARTS_IN_FLIGHT are on their way."""
        if self.upload_id is None:
            with storage_errors():
                self.upload_id = self.client.create_multipart_upload(
                    **self.where, **self.extra, **self.checksum
                )["UploadId"]
            self.sending = ThreadPoolExecutor(PARTS_IN_FLIGHT, thread_name_prefix="s3-part")
        while len(self.in_flight) >= PARTS_IN_FLIGHT:
            self._sent(self.in_flight.popleft())
        number = len(self.parts) + len(self.in_flight) + 1
        self.in_flight.append(self.sending.submit(self._upload_part, number, body))

    def _upload_part(self, number: int, body: bytearray) -> dict[str, object]:
        answer = self.client.upload_part(
            **self.where, UploadId=self.upload_id, PartNumber=number, Body=body, **self.checksum
        )
        part = {"PartNumber": number, "ETag": answer["ETag"]}
        if "ChecksumCRC32" in answer:
            part["ChecksumCRC32"] = answer["ChecksumCRC32"]
        return part

    def _sent(self, future: Future) -> None:
        with storage_errors():
            self.parts.append(future.result())

    def finish(self, body: bytearray) -> None:
        """Send the last bytes of a checked body; a temporary object is then stored."""
        if self.upload_id is None:
            self.last = body
        else:
            self.send_part(body)
            while self.in_flight:
                self._sent(self.in_flight.popleft())
        if self.temporary:
            self._store()

    def _store(self) -> None:
        with storage_errors():
            if self.upload_id is None:
                answer = self.client.put_object(
                    **self.where, Body=self.last, **self.extra, **self.checksum
                )
            else:
                answer = self.client.complete_multipart_upload(
                    **self.where, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
                )
        self.stored, self.version, self.last = True, answer.get("VersionId"), None

    def place(self, name: str) -> None:
        """Store the bytes as the storage's file `name`: complete the upload if it was sent
        there, or copy the temporary object on the server."""
        if object_key(self.storage, name) == self.key:
            self._store()
        else:
            copy_into_place(self.storage, self.key, name)

    def clean_up(self) -> None:
        """Abort the unfinished upload, or delete a temporary object; an upload placed at
        its own key stays. A failure here is not the upload's (it is stored, or refused for
        its own reason): it is logged, and the sweep removes what is left."""
        if self.sending is not None:
            self.sending.shutdown(wait=True, cancel_futures=True)
        try:
            if self.stored and self.temporary:
                # In a versioned bucket the version itself goes: a plain delete would keep
                # its bytes as a noncurrent version.
                version = {"VersionId": self.version} if self.version else {}
                self.client.delete_object(**self.where, **version)
            elif not self.stored and self.upload_id is not None:
                self.client.abort_multipart_upload(**self.where, UploadId=self.upload_id)
        except (BotoCoreError, ClientError) as exc:
            logger.warning("could not clean up the upload to %s: %s", self.key, exc)


def checksum_args(client) -> dict[str, str]:
    """As boto3's own uploads do: objects and their parts carry a CRC32, unless the client is
    told otherwise (AWS_REQUEST_CHECKSUM_CALCULATION=when_required, for stores that refuse
    them). A copy gets one of its own: a multipart upload's is not the whole object's."""
    if client.meta.config.request_checksum_calculation == "when_supported":
        return {"ChecksumAlgorithm": "CRC32"}
    return {}


def copy_into_place(storage: Storage, key: str, name: str) -> None:
    """Copy the temporary object `key` to the storage's file `name`, on the server."""
    # boto3's transfer module only here: a web worker on the filesystem never loads it (20 MB).
    from boto3.s3.transfer import TransferConfig

    client = storage.connection.meta.client
    config = TransferConfig(multipart_threshold=COPY_PART_SIZE, multipart_chunksize=COPY_PART_SIZE)
    with storage_errors():
        client.copy(
            {"Bucket": storage.bucket_name, "Key": key},
            storage.bucket_name,
            object_key(storage, name),
            ExtraArgs={**storage.get_object_parameters(name), **checksum_args(client)},
            Config=config,
        )


def presigned_download_url(
    storage: Storage, name: str, *, content_disposition: str, expires: int
) -> str:
    """A URL that GETs the storage's file `name` for `expires` seconds, without credentials
    of its own: the object store answers it (ranges included) with this Content-Disposition
    and `application/octet-stream`, whatever the object was stored with. Signed here, with
    the storage's own credentials: no request to the store is made."""
    client = storage.connection.meta.client
    return client.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": storage.bucket_name,
            "Key": object_key(storage, name),
            "ResponseContentDisposition": content_disposition,
            "ResponseContentType": "application/octet-stream",
        },
        ExpiresIn=expires,
    )


def unfinished(storage: Storage) -> Iterator[tuple[str, str | None, datetime]]:
    """(key, multipart upload id or None for a temporary object, when last written) of each
    upload that was never finished: a multipart upload in progress under `uploads/` or
    `blobs/`, or a temporary object under `uploads/` never cleaned up."""
    client = storage.connection.meta.client
    bucket = storage.bucket_name
    for folder in (UPLOADS, BLOBS):
        prefix = object_key(storage, folder) + "/"
        for page in client.get_paginator("list_multipart_uploads").paginate(
            Bucket=bucket, Prefix=prefix
        ):
            for upload in page.get("Uploads", []):
                yield upload["Key"], upload["UploadId"], _last_written(client, bucket, upload)
    prefix = object_key(storage, UPLOADS) + "/"
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield item["Key"], None, item["LastModified"]


def _last_written(client, bucket: str, upload: dict) -> datetime:
    """When a multipart upload was started or its last part sent."""
    last = upload["Initiated"]
    for listing in client.get_paginator("list_parts").paginate(
        Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
    ):
        last = max([last, *(part["LastModified"] for part in listing.get("Parts", []))])
    return last


def remove_unfinished(storage: Storage, key: str, upload_id: str | None) -> None:
    """Abort an unfinished multipart upload, or delete a temporary object. Idempotent."""
    client = storage.connection.meta.client
    where = {"Bucket": storage.bucket_name, "Key": key}
    if upload_id is None:
        # Its version, in a versioned bucket: a plain delete would keep the bytes.
        try:
            version = client.head_object(**where).get("VersionId")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return
            raise
        client.delete_object(**where, **({"VersionId": version} if version else {}))
        return
    try:
        client.abort_multipart_upload(**where, UploadId=upload_id)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
            raise
