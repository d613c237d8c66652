"""Uploaded files, checked by their content and never by their name: the photos of cases, point entries and
rewards, and the attachments of letters (photos and PDF files).

A photo is turned upright, scaled to at most 2560 px and re-encoded as JPEG under a random name: a 10 MB phone
photo becomes a few hundred KB, and its EXIF (GPS position, phone model) is not kept. A PDF is kept as it is,
under a random name, after checking that it is one; it is only ever served as a download.
"""

import io
import os
import uuid

from django.conf import settings
from django.core.files.base import ContentFile
from django.utils.translation import gettext as _
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InvalidInput

PHOTO_MAX_SIDE = 2560
PHOTO_MAX_PIXELS = 80_000_000
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "MPO")


def _check_size(upload, field: str, limit: int):
    if upload.size > limit:
        raise InvalidInput(
            _("照片「%(name)s」超过 %(mb)d MB。") % {"name": upload.name, "mb": limit // (1024 * 1024)}, field=field
        )


def check_photos(photos, *, max_count: int = 9, field: str = "photos") -> list:
    """Images only, each under `settings.CASE_PHOTO_MAX_BYTES`, at most `max_count`: the prepared files."""
    photos = list(photos or [])
    if len(photos) > max_count:
        raise InvalidInput(_("最多上传 %(n)d 张照片。") % {"n": max_count}, field=field)
    prepared = []
    for photo in photos:
        _check_size(photo, field, settings.CASE_PHOTO_MAX_BYTES)
        prepared.append(prepare_photo(photo, field=field))
    return prepared


def prepare_photo(photo, *, field: str = "photos") -> ContentFile:
    not_an_image = InvalidInput(_("「%(name)s」不是图片文件。") % {"name": photo.name}, field=field)
    try:
        photo.seek(0)
        with Image.open(photo) as probe:
            if probe.format not in IMAGE_FORMATS:
                raise not_an_image
            width, height = probe.size
            if width * height > PHOTO_MAX_PIXELS:
                raise InvalidInput(_("照片「%(name)s」尺寸过大。") % {"name": photo.name}, field=field)
            probe.verify()
        photo.seek(0)
        with Image.open(photo) as image:
            image = ImageOps.exif_transpose(image).convert("RGB")
            image.thumbnail((PHOTO_MAX_SIDE, PHOTO_MAX_SIDE))
            out = io.BytesIO()
            image.save(out, "JPEG", quality=85, optimize=True)
    except InvalidInput:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
        raise not_an_image from None
    return ContentFile(out.getvalue(), name=f"{uuid.uuid4().hex}.jpg")


def is_pdf(upload) -> bool:
    """Whether the bytes are a PDF file: the `%PDF-` header at the start and an `%%EOF` marker near the end."""
    upload.seek(0)
    head = upload.read(5)
    if head != b"%PDF-":
        return False
    upload.seek(max(upload.size - 1024, 0))
    tail = upload.read()
    upload.seek(0)
    return b"%%EOF" in tail


def display_name(upload, limit: int = 100) -> str:
    """The uploader's file name, for showing only (never for storing): the last path part, printable, short."""
    name = os.path.basename((upload.name or "").replace("\\", "/"))
    name = "".join(ch for ch in name if ch.isprintable()).strip() or "file"
    return name[-limit:]


def check_attachments(files, *, max_count: int, max_bytes: int, field: str = "attachments") -> list[tuple]:
    """Photos or PDF files, at most `max_count`, each under `max_bytes`: a list of (kind, prepared file, shown
    name, size) with kind "image" or "pdf". Anything else is refused with the file's name."""
    files = list(files or [])
    if len(files) > max_count:
        raise InvalidInput(_("最多上传 %(n)d 个附件。") % {"n": max_count}, field=field)
    prepared = []
    for upload in files:
        if upload.size > max_bytes:
            raise InvalidInput(
                _("附件「%(name)s」超过 %(mb)d MB。") % {"name": upload.name, "mb": max_bytes // (1024 * 1024)},
                field=field,
            )
        name = display_name(upload)
        if is_pdf(upload):
            upload.seek(0)
            content = ContentFile(upload.read(), name=f"{uuid.uuid4().hex}.pdf")
            prepared.append(("pdf", content, name, content.size))
            continue
        try:
            photo = prepare_photo(upload, field=field)
        except InvalidInput:
            raise InvalidInput(
                _("附件「%(name)s」不是图片或 PDF 文件。") % {"name": upload.name}, field=field
            ) from None
        prepared.append(("image", photo, name, photo.size))
    return prepared


# --- Serving what was uploaded ------------------------------------------------------------------------------

# A served file may not run anything, even if a browser were tricked into rendering it as a page.
SERVED_FILE_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"


def serve_file(stored, *, pdf_name: str | None = None):
    """A stored photo or PDF to someone who may see it. The type comes from the stored bytes (the uploader's
    file name proves nothing); images are shown inline, PDFs downloaded (never rendered in the app's origin);
    no sniffing, a sandboxing CSP, kept in the browser's private cache only. A missing file is a 404."""
    from django.http import FileResponse, Http404

    if not stored:
        raise Http404
    try:
        handle = stored.open("rb")
    except OSError:
        raise Http404 from None
    if pdf_name is not None or _starts_like_pdf(handle):
        response = FileResponse(
            handle, content_type="application/pdf", as_attachment=True, filename=pdf_name or "file.pdf"
        )
    else:
        try:
            with Image.open(handle) as picture:
                kind = Image.MIME.get(picture.format or "", "application/octet-stream")
        except (UnidentifiedImageError, OSError):
            kind = "application/octet-stream"
        handle.seek(0)
        response = FileResponse(handle, content_type=kind)
        response["Content-Disposition"] = "inline" if kind.startswith("image/") else "attachment"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = SERVED_FILE_CSP
    response["Cache-Control"] = "private, max-age=86400"
    return response


def _starts_like_pdf(handle) -> bool:
    head = handle.read(5)
    handle.seek(0)
    return head == b"%PDF-"
