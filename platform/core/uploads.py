"""The first upload handler: a file over UPLOAD_MAX_BYTES is not kept, only measured.

Django's own handlers keep a file in memory up to FILE_UPLOAD_MAX_MEMORY_SIZE, then spool it to a
temporary file, whatever its size. In front of them, this one passes the bytes on up to the limit
and drops the rest, and for a file over the limit hands Django an empty stand-in that carries the
real size: the upload's own size check then refuses it (413, naming both sizes) without the
platform having written more than the limit to disk. The body is still read to its end, so the
client gets that answer rather than a reset connection (nginx's client_max_body_size bounds the
body itself).
"""

from __future__ import annotations

import io

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler


class OversizeUpload(UploadedFile):
    """A file that was over the limit: its name and size, no content."""

    def __init__(self, name: str, size: int, content_type: str, charset: str | None) -> None:
        super().__init__(io.BytesIO(), name, content_type, size, charset)


class UploadLimitHandler(FileUploadHandler):
    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received = start + len(raw_data)
        if self.received > settings.UPLOAD_MAX_BYTES:
            return None  # the handlers after this one (which store the file) do not see it
        return raw_data

    def file_complete(self, file_size: int) -> UploadedFile | None:
        if file_size > settings.UPLOAD_MAX_BYTES:
            return OversizeUpload(
                self.file_name or "", file_size, self.content_type or "", self.charset
            )
        return None  # within the limit: the next handler's file
