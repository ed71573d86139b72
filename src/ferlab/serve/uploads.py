"""Reading an uploaded image from a ``multipart/form-data`` request, within bounds.

The body is read chunk by chunk and parsed as it arrives (``python-multipart``), entirely in
memory: the request is refused with 413 as soon as its ``Content-Length`` or the bytes actually
received pass the limit, so a client cannot make the server buffer more than that, and with 408
when the whole body has not arrived within the body timeout, so a client dripping bytes cannot
hold a connection for ever. No part of an upload is ever written to disk. The client's file
name is checked to be a plain name and only echoed back as the result's ``source``; it never
reaches the filesystem.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from ferlab.serve.errors import ApiError

__all__ = ["Upload", "read_upload"]

#: Form field that carries the image.
FIELD = "file"
#: Longest file name accepted (common filesystems' limit).
MAX_NAME = 255
#: A body over the limit is still read (and thrown away) up to this many bytes, so that ordinary
#: clients, which send their whole body before reading the answer, get to see the 413.
DRAIN_BYTES = 64 * 2**20
#: Declared content types accepted besides ``image/*``: what clients send when they do not know.
_GENERIC_TYPES = {"application/octet-stream", ""}


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    data: bytes


def _mib(n: int) -> str:
    return f"{n / 2**20:.3g} MiB"


async def _within(chunks: AsyncIterator[bytes], timeout: float) -> AsyncIterator[bytes]:
    """``chunks`` as long as they all arrive within ``timeout`` seconds; 408 after that."""
    deadline = asyncio.get_running_loop().time() + timeout
    source = chunks.__aiter__()
    while True:
        left = deadline - asyncio.get_running_loop().time()
        try:
            chunk = await asyncio.wait_for(source.__anext__(), max(left, 0.0))
        except StopAsyncIteration:
            return
        except asyncio.TimeoutError:
            raise ApiError(
                408, f"the request body did not arrive within {timeout:g} s", "request_timeout"
            ) from None
        yield chunk


async def read_upload(request: Request, limit: int, timeout: float = 60.0) -> Upload:
    """The image in the form field ``file`` of ``request``.

    Raises:
        ApiError: 413 beyond ``limit`` bytes; 408 when the body takes over ``timeout``
            seconds; 415 when the request is not multipart or the file is declared as
            something other than an image; 422 when the field is missing, repeated or empty,
            or the file name is not a plain name.
    """
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise ApiError(415, f"send the image as multipart/form-data in the form field '{FIELD}'")
    chunks = _within(request.stream(), timeout)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        if int(declared) <= DRAIN_BYTES:
            await _drain(chunks)
        raise ApiError(413, f"request of {_mib(int(declared))} is over the {_mib(limit)} limit")

    parts: list[dict] = []
    header_field = bytearray()
    header_value = bytearray()

    def on_part_begin() -> None:
        parts.append({"headers": {}, "data": bytearray()})

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        parts[-1]["headers"][bytes(header_field).lower()] = bytes(header_value)
        header_field.clear()
        header_value.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1]["data"].extend(data[start:end])

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
        },
    )
    received = 0
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > limit:
                await _drain(chunks, received)
                raise ApiError(413, f"request is over the {_mib(limit)} limit")
            parser.write(chunk)
        parser.finalize()
    except ApiError:
        raise
    except Exception as exc:  # python-multipart's parse errors
        raise ApiError(422, f"malformed multipart body ({exc})") from None
    return _the_file(parts)


async def _drain(chunks: AsyncIterator[bytes], seen: int = 0) -> None:
    """Read the rest of a refused body without keeping it, up to :data:`DRAIN_BYTES` (a larger
    one gets its answer early and the connection closed)."""
    async for chunk in chunks:
        seen += len(chunk)
        if seen > DRAIN_BYTES:
            return


def _the_file(parts: list[dict]) -> Upload:
    files = []
    for part in parts:
        _, disposition = parse_options_header(part["headers"].get(b"content-disposition", b""))
        if disposition.get(b"name") == FIELD.encode():
            files.append((disposition, part))
    if len(files) != 1:
        problem = "is missing" if not files else f"appears {len(files)} times"
        raise ApiError(422, f"the form field '{FIELD}' {problem}; send exactly one image in it")
    disposition, part = files[0]
    name = disposition.get(b"filename", b"upload").decode("utf-8", "replace") or "upload"
    _check_name(name)
    ctype = parse_options_header(part["headers"].get(b"content-type", b""))[0].decode("latin-1")
    if not ctype.startswith("image/") and ctype not in _GENERIC_TYPES:
        raise ApiError(415, f"'{name}' is declared as {ctype}, not an image")
    if not part["data"]:
        raise ApiError(422, f"'{name}' is empty", "invalid_image")
    return Upload(name, ctype, bytes(part["data"]))


def _check_name(name: str) -> None:
    """Refuse names that are paths or could fool a log or a terminal: the name is only echoed."""
    bad = (
        len(name) > MAX_NAME
        or name in (".", "..")
        or any(c in name for c in "/\\")
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
    )
    if bad:
        shown = repr(name[:80]) + ("..." if len(name) > 80 else "")
        raise ApiError(
            422, f"file name {shown} must be a plain name (no folders, no control characters)"
        )
