"""What a WADO-RS client accepts, and what Nimbus can send it (PS3.18 8.7).

The Accept header of a retrieve names media ranges such as
``multipart/related; type="application/dicom"; transfer-syntax=*``. This
module turns them into choices for each stored instance: send the file as
stored (bit for bit), transcode it to Explicit VR Little Endian, or refuse
(406).
"""

from dataclasses import dataclass
from functools import cache

from django.http.request import MediaType
from pydicom.pixels import get_decoder
from pydicom.uid import UID

IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
NATIVE_TRANSFER_SYNTAXES = {IMPLICIT_LE, EXPLICIT_LE, DEFLATED_LE, EXPLICIT_BE}
ANY_TRANSFER_SYNTAX = "*"

DICOM = "application/dicom"
OCTET_STREAM = "application/octet-stream"

# PS3.18 Table 8.7.3-5 (and 8.7.3-3): the media type of an encapsulated frame.
FRAME_MEDIA_TYPES = {
    "1.2.840.10008.1.2.5": "image/dicom-rle",
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
}


@dataclass(frozen=True)
class Wanted:
    """One acceptable media range of a multipart retrieve.

    ``part_type`` is the media type of each part (the ``type`` parameter of
    multipart/related, or the range itself when the client named a
    single-part type); ``transfer_syntax`` is None when the client did not
    say, which means the default of PS3.18 8.7.3.5.2.
    """

    part_type: str
    transfer_syntax: str | None
    quality: float

    def covers(self, media_type: str) -> bool:
        main, _, sub = self.part_type.partition("/")
        offered_main, _, offered_sub = media_type.partition("/")
        return main in ("*", offered_main) and sub in ("*", offered_sub)


def parse_accept(accept: str, default_part_type: str) -> list[Wanted]:
    """The acceptable media ranges, best first (PS3.18 8.7.3, RFC 9110 12.5.1).

    Parameters
    ----------
    accept : str
        The Accept header (or the ``accept`` query parameter).
    default_part_type : str
        The part type assumed for ``multipart/related`` without ``type``,
        and for an empty header.

    Returns
    -------
    list of Wanted
        Ranges with quality above 0, highest quality first; ranges that are
        neither multipart/related nor a possible part type are left out.
    """
    if not accept.strip():
        return [Wanted(default_part_type, None, 1.0)]
    wanted = []
    for token in _split_ranges(accept):
        media = MediaType(token)
        if float(media.quality) <= 0:
            continue
        params = {key.lower(): value.strip('"') for key, value in media.params.items()}
        if (media.main_type, media.sub_type) == ("multipart", "related"):
            part_type = params.get("type", default_part_type).lower()
        elif (media.main_type, media.sub_type) == ("multipart", "*"):
            part_type = default_part_type
        else:
            part_type = f"{media.main_type}/{media.sub_type}".lower()
        wanted.append(
            Wanted(part_type, params.get("transfer-syntax"), float(media.quality))
        )
    return sorted(wanted, key=lambda item: -item.quality)


def _split_ranges(accept: str) -> list[str]:
    # Commas separate ranges, except inside a quoted parameter value.
    ranges, current, quoted = [], [], False
    for char in accept:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            ranges.append("".join(current))
            current = []
        else:
            current.append(char)
    ranges.append("".join(current))
    return [token.strip() for token in ranges if token.strip()]


@cache
def can_decode(transfer_syntax_uid: str) -> bool:
    """Whether an installed pixel data decoder handles this transfer syntax."""
    if transfer_syntax_uid in NATIVE_TRANSFER_SYNTAXES:
        return True
    try:
        return bool(get_decoder(UID(transfer_syntax_uid)).is_available)
    except (NotImplementedError, ValueError):
        return False


def can_transcode_to_explicit_le(stored: str) -> bool:
    """Whether Nimbus can write this stored syntax as Explicit VR Little Endian.

    Implicit VR and deflated files are re-encoded; compressed pixel data is
    decoded with pydicom's decoders. Explicit VR Big Endian (retired) is not
    converted: its OW values would have to be byte-swapped one by one.
    """
    if stored == EXPLICIT_BE:
        return False
    return can_decode(stored)


def instance_transfer_syntax(wanted: list[Wanted], stored: str) -> str | None:
    """The transfer syntax to send an instance in (PS3.18 8.7.3.5.2).

    Parameters
    ----------
    wanted : list of Wanted
        From :func:`parse_accept`, best first.
    stored : str
        The transfer syntax UID of the stored file.

    Returns
    -------
    str or None
        ``stored`` when the file can go bit for bit (the client named it or
        ``*``, or accepts anything), Explicit VR Little Endian when the
        client asks for the default and the file can be transcoded to it;
        None when nothing the client accepts can be produced (406).
    """
    for item in wanted:
        if not item.covers(DICOM):
            continue
        if item.part_type == "*/*" and item.transfer_syntax is None:
            return stored
        asked = item.transfer_syntax or EXPLICIT_LE
        if asked in (ANY_TRANSFER_SYNTAX, stored):
            return stored
        if asked == EXPLICIT_LE and can_transcode_to_explicit_le(stored):
            return EXPLICIT_LE
    return None


@dataclass(frozen=True)
class FramePlan:
    """How frames of one instance are sent."""

    part_type: str
    transfer_syntax: str
    decode: bool  # decode compressed frames to native little-endian pixels


def frame_plan(wanted: list[Wanted], stored: str) -> FramePlan | None:
    """How to answer a frames request for an instance (PS3.18 8.7.3.3.2).

    Native pixel data goes as ``application/octet-stream`` in Explicit VR
    Little Endian byte order. Encapsulated frames go as stored, with the
    image media type of their transfer syntax (or as octet-stream with
    ``transfer-syntax=*``), or decoded to native pixels when the client asks
    for octet-stream in the default syntax and a decoder is installed.

    Returns
    -------
    FramePlan or None
        None when nothing acceptable can be produced (406).
    """
    for item in wanted:
        asked = item.transfer_syntax
        if stored in NATIVE_TRANSFER_SYNTAXES:
            if item.covers(OCTET_STREAM) and asked in (None, "*", EXPLICIT_LE):
                return FramePlan(OCTET_STREAM, EXPLICIT_LE, decode=False)
            continue

        image_type = FRAME_MEDIA_TYPES.get(stored)
        if image_type and item.covers(image_type):
            if asked in (None, "*", stored):
                return FramePlan(image_type, stored, decode=False)
        if item.covers(OCTET_STREAM):
            if asked in ("*", stored):
                return FramePlan(OCTET_STREAM, stored, decode=False)
            if asked in (None, EXPLICIT_LE) and can_decode(stored):
                return FramePlan(OCTET_STREAM, EXPLICIT_LE, decode=True)
    return None
