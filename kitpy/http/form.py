"""Form bodies: application/x-www-form-urlencoded and multipart/form-data."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import parse_qsl

from kitpy.errors import HTTPError
from kitpy.http.multidict import MultiDict

__all__ = ("FormData", "UploadFile", "parse_form")


@dataclass(frozen=True)
class UploadFile:
    """A file field of a multipart form."""

    filename: str
    content_type: str
    content: bytes


class FormData(MultiDict[str | UploadFile]):
    """Multi-valued form fields: ``form["a"]`` first value, ``form.get_all("a")``."""

    __slots__ = ()


def parse_form(content_type: str, body: bytes) -> FormData:
    """Parse a form body by its content type; anything else is a 415."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/x-www-form-urlencoded" or (not media and b"=" in body):
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError as exc:
            raise HTTPError(400, "form body is not valid UTF-8") from exc
        return FormData(list(pairs))
    if media == "multipart/form-data":
        return _parse_multipart(content_type, body)
    raise HTTPError(415, f"expected a form body, got content type {content_type or 'none'!r}")


def _parse_multipart(content_type: str, body: bytes) -> FormData:
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise HTTPError(400, "malformed multipart body")
    items: list[tuple[str, str | UploadFile]] = []
    for part in message.iter_parts():
        assert isinstance(part, Message)
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise HTTPError(400, "multipart part without a name")
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename is not None:
            ctype = part.get_content_type() or "application/octet-stream"
            items.append((name, UploadFile(filename, ctype, data)))
        else:
            charset = part.get_content_charset() or "utf-8"
            items.append((name, data.decode(charset, errors="replace")))
    return FormData(items)
