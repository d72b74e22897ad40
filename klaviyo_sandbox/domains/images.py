"""Sandbox domain: images.

From a URL, a ``data:image/...;base64`` URI or a multipart file; jpeg, png or gif up to 5 MB; numeric
ids; a name already taken gets a suffix. Bytes given (a file, a data URI) must be an image in one of
those formats, whatever the file name or media type says. The sandbox fetches nothing: a URL's format
is its file name's, its size a stand-in, and its ``image_url`` points at a sandbox CDN host.
"""

from __future__ import annotations

import base64
import binascii
import re
import zlib
from urllib.parse import urlparse

from .._context import Ctx, Reply
from .._jsonapi import SandboxError, bad_request, iso
from .._keys import PUBLIC_KEY
from .._services import Services
from .._store import Resource
from ..domain import DomainBuilder

_d = DomainBuilder("images")


MAX_IMAGE_BYTES = 5 * 1024 * 1024
_MAGIC = ((b"\x89PNG", "png"), (b"\xff\xd8\xff", "jpeg"), (b"GIF8", "gif"))
_EXTENSIONS = {"png": "png", "jpg": "jpeg", "jpeg": "jpeg", "gif": "gif"}
_DATA_URI = re.compile(r"^data:image/(png|jpe?g|gif);base64,(.*)$", re.S)


def add_image(svc: Services, name: str, fmt: str, size: int, hidden: bool, now: float) -> Resource:
    """Store an image with the next numeric id; a taken name gets a " (n)" suffix."""
    ids = [int(r.id) for r in svc.store.iter("image") if r.id.isdigit()]
    rid = str(max(ids, default=0) + 1)
    taken = {str(r.attributes.get("name")) for r in svc.store.iter("image")}
    final, n = name, 1
    while final in taken:
        final, n = f"{name} ({n})", n + 1
    url = f"https://sandbox-cdn.klaviyo.test/company/{PUBLIC_KEY}/images/{rid}.{'jpg' if fmt == 'jpeg' else fmt}"
    image = Resource(
        "image",
        rid,
        {"name": final, "image_url": url, "format": fmt, "size": size, "hidden": hidden, "updated_at": iso(now)},
        {},
        now,
        now,
    )
    svc.store.put(image)
    return image


def _sniffed(data: bytes) -> str | None:
    """The format ``data`` is in, read from its first bytes (None: not a jpeg, png or gif)."""
    return next((fmt for magic, fmt in _MAGIC if data.startswith(magic)), None)


def _named_format(filename: str) -> str | None:
    """The format a URL's file name says (all there is to go on: the sandbox downloads nothing)."""
    return _EXTENSIONS.get(filename.rsplit(".", 1)[-1].lower()) if "." in filename else None


@_d.handles("upload_image_from_url")
def _image_from_url(ctx: Ctx) -> Reply:
    source = str(ctx.attrs["import_from_url"])
    pointer = "/data/attributes/import_from_url"
    match = _DATA_URI.match(source)
    if match:
        try:
            data = base64.b64decode(match.group(2), validate=True)
        except (binascii.Error, ValueError):
            raise bad_request("The data URI's base64 payload is not valid base64.", pointer=pointer) from None
        found = _sniffed(data)
        if found is None:  # the bytes are what Klaviyo reads, not the media type the URI claims
            raise bad_request(
                f"The data URI says image/{match.group(1)} but its content is not a jpeg, png or gif image.",
                pointer=pointer,
            )
        fmt, size, default_name = found, len(data), "image"
    else:
        url = urlparse(source)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise bad_request("import_from_url must be an http(s) URL or a data:image/...;base64 URI.", pointer=pointer)
        default_name = url.path.rsplit("/", 1)[-1] or url.netloc
        fmt = _named_format(default_name) or ""
        if not fmt:
            raise bad_request(f"Unsupported image format in {source!r}; supported: jpeg, png, gif.", pointer=pointer)
        size = 20_000 + zlib.crc32(source.encode()) % 480_000  # the sandbox does not download the image
    if size > MAX_IMAGE_BYTES:
        raise bad_request("The image is larger than 5MB, the maximum.", pointer=pointer)
    image = add_image(
        ctx.svc, ctx.attrs.get("name") or default_name, fmt, size, bool(ctx.attrs.get("hidden") or False), ctx.now
    )
    return ctx.one(image)


@_d.handles("upload_image_from_file")
def _image_from_file(ctx: Ctx) -> Reply:
    form = ctx.form or {}
    upload = form.get("file")
    if not isinstance(upload, dict):
        raise SandboxError(
            400, "invalid", "Invalid input.", "Send the image as the multipart form field 'file'.", parameter="file"
        )
    data = base64.b64decode(upload.get("base64") or "")
    filename = str(upload.get("filename") or "upload")
    fmt = _sniffed(data)
    if fmt is None:  # a name ending in .png does not make a text file an image
        raise SandboxError(
            400,
            "invalid",
            "Invalid input.",
            f"{filename!r} is not a jpeg, png or gif image (the supported formats): its content is not one.",
            parameter="file",
        )
    if len(data) > MAX_IMAGE_BYTES:
        raise SandboxError(
            400, "invalid", "Invalid input.", "The image is larger than 5MB, the maximum.", parameter="file"
        )
    hidden = str(form.get("hidden", "false")).lower() in ("true", "1")
    image = add_image(ctx.svc, str(form.get("name") or filename), fmt, len(data), hidden, ctx.now)
    return ctx.one(image)


@_d.handles("update_image")
def _update_image(ctx: Ctx) -> Reply:
    image = ctx.get("image")
    for key in ("name", "hidden"):
        if ctx.attrs.get(key) is not None:
            image.attributes[key] = ctx.attrs[key]
    image.attributes["updated_at"] = ctx.now_iso
    ctx.store.put(image)
    return ctx.one(image)


DOMAIN = _d.build()
