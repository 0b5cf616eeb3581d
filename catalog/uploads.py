"""Where the browser's file uploads go while Django reads the form (SPEC 3.5: bounded memory).

Django's default handlers keep a file of up to FILE_UPLOAD_MAX_MEMORY_SIZE in memory and
spool larger ones to the system's temporary folder, which is often memory too (tmpfs). The
version form uses this handler instead: every file, whatever its size, is written in chunks
to a temporary file under ARTIFACT_TMP_DIR, on the disk the artifacts are staged on, and
refused past ARTIFACT_MAX_SIZE. registry.storage then streams it into storage while hashing,
as it does an API upload. The temporary files go when the request ends (Django closes the
uploaded files, and a closed NamedTemporaryFile is deleted).
"""

import tempfile

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler

from config.files import make_dirs
from registry.errors import TooLarge


class StagingUploadHandler(FileUploadHandler):
    def __init__(self, request=None):
        super().__init__(request)
        self.opened: list[UploadedFile] = []

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        folder = make_dirs(settings.ARTIFACT_TMP_DIR)
        # Closed with the request (Django closes its uploaded files), which deletes it.
        handle = tempfile.NamedTemporaryFile(prefix="form-", suffix=".upload", dir=folder)  # noqa: SIM115
        self.file = UploadedFile(
            handle, self.file_name, self.content_type, 0, self.charset, self.content_type_extra
        )
        self.opened.append(self.file)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        limit = settings.ARTIFACT_MAX_SIZE
        if start + len(raw_data) > limit:
            self.upload_interrupted()
            raise TooLarge(
                f"{self.file_name} is larger than the limit of {limit} bytes: nothing was "
                "registered"
            )
        self.file.write(raw_data)

    def file_complete(self, file_size: int) -> UploadedFile:
        self.file.seek(0)
        self.file.size = file_size
        return self.file

    def upload_interrupted(self) -> None:
        """The form was cut off or refused: every file this request wrote goes now."""
        for uploaded in self.opened:
            uploaded.close()
