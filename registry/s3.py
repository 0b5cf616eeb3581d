"""Artifacts on S3-compatible storage (django-storages' S3Storage), where the storage API is
not enough: an upload streamed into the bucket while it is hashed, placed under its key by a
copy on the server, and what uploads cut off by a killed server leave (SPEC 3.5).

An upload goes to a temporary key, `<location>/uploads/<random>`, as it arrives: a body of
at most one part is sent whole (PutObject), a larger one as a multipart upload in parts of
PART_SIZE, so the server holds about one part whatever the upload's size, and nothing is
written to a local disk. The last bytes go only once the body is complete and its size and
SHA-256 are what was declared or expected; any failure aborts the multipart upload. The
object is then copied under its content address on the server (CopyObject, or
UploadPartCopy past COPY_PART_SIZE: the bytes are never sent again) and the temporary
object deleted. A server killed midway leaves a multipart upload in progress, or a
temporary object: `unfinished` finds them for verify_artifacts and the sweep.

With ARTIFACT_DOWNLOAD_REDIRECT, a download is a redirect to `presigned_download_url`: the
object store sends the bytes, and the headers it was told to send with them.

Only public API is used: S3Storage's `connection`, `bucket_name`, `location` and
`get_object_parameters`, storages.utils' `safe_join` (how the storage names its keys),
and boto3's client.
"""

import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime

from botocore.exceptions import BotoCoreError, ClientError
from django.core.files.storage import Storage, storages
from storages.utils import safe_join

from registry.errors import RegistryError, Unavailable
from registry.hashed import Hashed

logger = logging.getLogger(__name__)

UPLOADS = "uploads"
PART_SIZE = 8 * 1024 * 1024  # S3's smallest is 5 MiB, but for the last
MAX_PARTS = 10_000  # S3's limit: a larger ARTIFACT_MAX_SIZE makes the parts larger
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
) -> Iterator[tuple[str, int, str]]:
    """Send `chunks` to a temporary object, hashing them: (SHA-256, size, key). TooLarge past
    `limit` bytes; `check(sha256, size)` refuses a complete body before its last bytes
    go. The temporary object is deleted after, and an unfinished upload aborted, whatever
    happens."""
    key = object_key(storage, f"{UPLOADS}/{uuid.uuid4().hex}")
    upload = _Upload(storage, key)
    try:
        digest, size = _send(chunks, upload, limit, check)
        yield digest, size, key
    finally:
        upload.clean_up()


def _send(
    chunks: Iterable[bytes], upload: "_Upload", limit: int, check: Callable[[str, int], None]
) -> tuple[str, int]:
    # Parts of a fixed size from one buffer. A full part goes once more bytes follow it, so
    # that the last part is never empty; a body of at most one part is sent whole.
    part_size = max(PART_SIZE, -(-limit // MAX_PARTS))
    buffer = bytearray(part_size)
    filled = 0
    hashed = Hashed(chunks, limit)
    for chunk in hashed:
        view = memoryview(chunk)
        while view:
            if filled == part_size:
                upload.send_part(buffer)
                filled = 0
            n = min(len(view), part_size - filled)
            buffer[filled : filled + n] = view[:n]
            filled += n
            view = view[n:]
    digest, size = hashed.digest, hashed.size
    check(digest, size)
    del buffer[filled:]  # the last part: the bytes it holds, not a copy of them
    upload.finish(buffer)
    return digest, size


class _Upload:
    """The temporary object being written: a multipart upload from its first full part on."""

    def __init__(self, storage: Storage, key: str):
        self.client = storage.connection.meta.client
        self.where = {"Bucket": storage.bucket_name, "Key": key}
        self.extra = {
            "ContentType": "application/octet-stream",
            **storage.get_object_parameters(key),
        }
        self.checksum = checksum_args(self.client)
        self.upload_id: str | None = None
        self.parts: list[dict[str, object]] = []
        self.version: str | None = None
        self.stored = False

    def send_part(self, body: bytearray) -> None:
        with storage_errors():
            if self.upload_id is None:
                self.upload_id = self.client.create_multipart_upload(
                    **self.where, **self.extra, **self.checksum
                )["UploadId"]
            number = len(self.parts) + 1
            answer = self.client.upload_part(
                **self.where, UploadId=self.upload_id, PartNumber=number, Body=body, **self.checksum
            )
        part = {"PartNumber": number, "ETag": answer["ETag"]}
        if "ChecksumCRC32" in answer:
            part["ChecksumCRC32"] = answer["ChecksumCRC32"]
        self.parts.append(part)

    def finish(self, body: bytearray) -> None:
        """Send the last bytes: the object is complete."""
        if self.upload_id is None:
            with storage_errors():
                answer = self.client.put_object(
                    **self.where, Body=body, **self.extra, **self.checksum
                )
        else:
            self.send_part(body)
            with storage_errors():
                answer = self.client.complete_multipart_upload(
                    **self.where, UploadId=self.upload_id, MultipartUpload={"Parts": self.parts}
                )
        self.stored, self.version = True, answer.get("VersionId")

    def clean_up(self) -> None:
        """Delete the object, or abort the unfinished upload. A failure here is not the
        upload's (it is stored, or refused for its own reason): it is logged, and the sweep
        removes what is left."""
        try:
            if self.stored:
                # In a versioned bucket the version itself goes: a plain delete would keep
                # its bytes as a noncurrent version.
                version = {"VersionId": self.version} if self.version else {}
                self.client.delete_object(**self.where, **version)
            elif self.upload_id is not None:
                self.client.abort_multipart_upload(**self.where, UploadId=self.upload_id)
        except (BotoCoreError, ClientError) as exc:
            logger.warning("could not clean up the upload to %s: %s", self.where["Key"], exc)


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
    upload under `uploads/` that was never finished, or finished and never cleaned up."""
    client = storage.connection.meta.client
    bucket = storage.bucket_name
    prefix = object_key(storage, UPLOADS) + "/"
    for page in client.get_paginator("list_multipart_uploads").paginate(
        Bucket=bucket, Prefix=prefix
    ):
        for upload in page.get("Uploads", []):
            last = upload["Initiated"]
            for listing in client.get_paginator("list_parts").paginate(
                Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            ):
                last = max([last, *(part["LastModified"] for part in listing.get("Parts", []))])
            yield upload["Key"], upload["UploadId"], last
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield item["Key"], None, item["LastModified"]


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
