"""A JPEG file's segments: where its header, frame and primary image are, and its metadata.

What jpeg_patch.py needs to know about a file before and after patching it: the segments
between SOI and the first SOS (``parse``), whether its Huffman tables are the standard ones
(``standard_tables``: a patched file is coded like its input), and its APPn/COM segments, put
back byte for byte into the patched file (``splice_metadata``). Only the byte layout here: no
pixels, no jpeglib.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

# JPEG markers (the byte after 0xFF).
EOI, SOS, DHT, COM = 0xD9, 0xDA, 0xC4, 0xFE
APP0, APP15 = 0xE0, 0xEF
STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM and RST0..7 carry no length
SOF_BASELINE = {0xC0, 0xC1}  # baseline and extended sequential, Huffman coded
SOF_PROGRESSIVE = {0xC2}
SOF_OTHER = {0xC3: "lossless", 0xC5: "hierarchical", 0xC6: "hierarchical", 0xC7: "hierarchical",
             0xC9: "arithmetic-coded", 0xCA: "arithmetic-coded", 0xCB: "arithmetic-coded",
             0xCD: "arithmetic-coded", 0xCE: "arithmetic-coded", 0xCF: "arithmetic-coded"}


class CannotPatch(Exception):
    """This file cannot be patched (or the patch failed verification); the message says why."""


@dataclass
class Segment:
    marker: int
    data: bytes  # the whole segment: 0xFF, marker, length and payload


@dataclass
class Layout:
    header: list[Segment]  # every segment between SOI and the first SOS
    sof: int  # the frame marker (0xC0, 0xC2, ...)
    precision: int  # bits per sample
    factors: list[tuple[int, int]]  # (h, v) sampling factors of each component
    sos: int  # offset of the first SOS marker
    end: int  # offset just past the EOI of the primary image
    size: int  # bytes of the primary image as it will be written back (without dropped segments)


def is_mpf(seg: Segment) -> bool:
    """APP2 "MPF": offsets of further images (previews, depth or gain maps) appended after the
    primary image's EOI. Those images are not carried into a patched file (its primary image has
    a new length anyway), so the segment, which would point at nothing, is dropped."""
    return seg.marker == APP0 + 2 and seg.data[4:8] == b"MPF\x00"


def parse(data: bytes) -> Layout:
    """The header segments, frame type and primary-image end of a JPEG byte string."""
    if data[:2] != b"\xff\xd8":
        raise CannotPatch("not a JPEG stream (no SOI)")
    pos, header, sof, frame = 2, [], None, b""
    while True:
        while pos < len(data) and data[pos] == 0xFF and pos + 1 < len(data) and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes
        if pos + 4 > len(data) or data[pos] != 0xFF:
            raise CannotPatch("malformed JPEG header")
        marker = data[pos + 1]
        if marker == SOS:
            break
        if marker in STANDALONE:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        header.append(Segment(marker, data[pos:pos + 2 + length]))
        if 0xC0 <= marker <= 0xCF and marker not in (DHT, 0xC8, 0xCC):
            sof, frame = marker, data[pos + 4:pos + 2 + length]
        pos += 2 + length
    if sof is None or len(frame) < 6 or len(frame) < 6 + 3 * frame[5]:
        raise CannotPatch("no frame header (SOF) before the image data")
    sos = pos
    factors = [(frame[7 + 3 * i] >> 4, frame[7 + 3 * i] & 15) for i in range(frame[5])]
    # Walk the entropy-coded data to the primary image's EOI. Segments (SOS headers, and the
    # DHT/DQT/DRI/... that progressive files put between scans) are skipped by their length;
    # in coded data a 0xFF is either stuffed (0xFF00), fill, a restart marker or a real marker.
    while True:
        marker = data[pos + 1]
        if marker == EOI:
            end = pos + 2
            break
        if marker in STANDALONE:
            pos += 2
        else:
            pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        while True:
            pos = data.find(b"\xff", pos)
            if pos < 0 or pos + 1 >= len(data):
                raise CannotPatch("truncated JPEG (no EOI)")
            if data[pos + 1] == 0x00:
                pos += 2
            elif data[pos + 1] == 0xFF:
                pos += 1
            else:
                break
    size = end - sum(len(s.data) for s in header if is_mpf(s))
    return Layout(
        header=header, sof=sof, precision=frame[0], factors=factors, sos=sos, end=end, size=size,
    )


def huffman_tables(header: list[Segment]) -> set[tuple[int, bytes]]:
    """(class, code lengths + symbols) of every Huffman table defined in the header."""
    tables = set()
    for seg in header:
        if seg.marker != DHT:
            continue
        body, i = seg.data[4:], 0
        while i + 17 <= len(body):
            n = sum(body[i + 1:i + 17])
            tables.add((body[i] >> 4, bytes(body[i + 1:i + 17 + n])))
            i += 17 + n
    return tables


_STANDARD_TABLES: set[tuple[int, bytes]] | None = None


def standard_tables() -> set[tuple[int, bytes]]:
    """The example Huffman tables of the JPEG standard (Annex K.3), which libjpeg writes unless
    asked to optimise: taken from a tiny image that Pillow's libjpeg encodes without optimising."""
    global _STANDARD_TABLES
    if _STANDARD_TABLES is None:
        from PIL import Image

        buf = io.BytesIO()
        Image.new("RGB", (16, 16), (90, 140, 200)).save(buf, "JPEG", optimize=False)
        _STANDARD_TABLES = huffman_tables(parse(buf.getvalue()).header)
    return _STANDARD_TABLES


def splice_metadata(original: Layout, written: bytes) -> bytes:
    """``written`` with its own APPn/COM segments replaced by the original file's, byte for byte.

    libjpeg writes a default JFIF APP0 of its own and nothing else; the input's segments (its
    JFIF with the right density, EXIF, ICC profile, XMP, comments, Adobe, ...) go back in the
    order the input had them, right after SOI, followed by the written tables and frame header.
    """
    out = parse(written)
    meta = [s.data for s in original.header if (APP0 <= s.marker <= APP15 or s.marker == COM) and not is_mpf(s)]
    tables = [s.data for s in out.header if not (APP0 <= s.marker <= APP15 or s.marker == COM)]
    return b"".join([b"\xff\xd8", *meta, *tables, written[out.sos:out.end]])
