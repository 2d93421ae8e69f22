"""multipart/form-data read as it arrives, every size bounded while reading.

Starlette's form parser spools file parts to temporary files without a size bound and reads
a chunked body to its end before any limit applies. Here the body is counted chunk by chunk
as the client sends it: at the total limit the request is a 413 and nothing more is read;
each part is held in memory up to its own limit (the limits are small: an icon, a JSON
document), and a part with a name the caller does not expect is refused when its headers end.
"""

from dataclasses import dataclass, field

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header
from starlette.requests import Request

from tokenhouse.kit.problems import BadRequest, PayloadTooLarge, ValidationFailed


@dataclass
class Part:
    name: str
    filename: str | None  # None for a plain form field
    data: bytearray = field(default_factory=bytearray)


class _Reader:
    """The parser's callbacks: headers of the current part, its bytes, the parts so far."""

    def __init__(self, limits: dict[str, int]):
        self.limits = limits
        self.parts: dict[str, Part] = {}
        self.current: Part | None = None
        self.field = b""
        self.value = b""
        self.disposition = b""

    def on_part_begin(self) -> None:
        self.current = None
        self.disposition = b""

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]

    def on_header_end(self) -> None:
        if self.field.lower() == b"content-disposition":
            self.disposition = self.value
        self.field = self.value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.disposition)
        raw_name = options.get(b"name")
        if raw_name is None:
            raise BadRequest("A multipart part has no name.",
                             errors={"body": ["Every part needs a form-data name."]})
        name = raw_name.decode("utf-8", "replace")
        if name not in self.limits:
            raise ValidationFailed({name[:64]: ["Unknown form part."]})
        if name in self.parts:
            raise ValidationFailed({name: ["The part is sent more than once."]})
        raw_filename = options.get(b"filename")
        filename = raw_filename.decode("utf-8", "replace") if raw_filename is not None else None
        self.current = self.parts[name] = Part(name, filename)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self.current
        if part is None:
            raise BadRequest("The multipart body cannot be read.")
        part.data += data[start:end]
        limit = self.limits[part.name]
        if len(part.data) > limit:
            raise PayloadTooLarge(f"The part '{part.name}' is larger than {limit} bytes.")


async def read_form(request: Request, limits: dict[str, int], *, max_total: int
                    ) -> dict[str, Part]:
    """The parts of a multipart body by name. `limits` names the parts that may come and the
    bytes each may hold; the whole body may hold `max_total` bytes. 413 when either is
    exceeded (as soon as it is), 400 for a malformed body or a part not in `limits`."""
    _, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadRequest("The multipart body cannot be read: no boundary in Content-Type.")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_total:
        raise PayloadTooLarge(f"The request body is larger than {max_total} bytes.")
    reader = _Reader(limits)
    try:
        parser = MultipartParser(boundary, callbacks={
            "on_part_begin": reader.on_part_begin,
            "on_header_field": reader.on_header_field,
            "on_header_value": reader.on_header_value,
            "on_header_end": reader.on_header_end,
            "on_headers_finished": reader.on_headers_finished,
            "on_part_data": reader.on_part_data,
        })
        received = 0
        # Counted as it arrives: a chunked body (no Content-Length) stops being read at the
        # limit, not after it was written somewhere whole.
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_total:
                raise PayloadTooLarge(f"The request body is larger than {max_total} bytes.")
            parser.write(chunk)
        parser.finalize()
    except FormParserError as exc:
        raise BadRequest(f"The multipart body cannot be read: {str(exc)[:200]}") from None
    if parser.state not in (MultipartState.END, MultipartState.BOUNDARY_PADDING):
        # Cut short: no part of it is trusted (a truncated icon would be stored as sent).
        raise BadRequest("The multipart body ends before its closing boundary.")
    return reader.parts
