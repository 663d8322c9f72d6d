"""Hostile PDFs for the fuzz tests, and a watched process pool to feed them through.

Three sources, all deterministic:

* :func:`mutants` - seeded byte- and token-level mutations of real documents
  (:class:`helpers.pdfs.TestDocuments`): bit flips, truncation, chunk duplication and
  deletion, corrupted xref offsets, swapped object numbers, absurd ``/Length`` values,
  splices of one document into another.
* :func:`crafted` - hand-built attacks, one per known way a PDF reader is made to
  crash, hang or exhaust memory: nesting 10 000 levels deep, ``/Parent`` and ``/Kids``
  cycles, page counts of billions, Flate bombs that inflate to GiBs, cross-reference
  streams that declare a billion objects, broken encryption dictionaries, ``/Prev``
  chains that loop, a last line of megabytes, and inputs aimed at the upload check's own
  scans. :attr:`HostilePdf.must_refuse` marks the ones an upload must refuse.
* :func:`plausible_pdfs` - a hypothesis strategy for syntactically plausible PDFs
  (random object graphs, streams, filters, references, trailers, incremental
  updates); :func:`hypothesis_examples` draws a reproducible sample from it.

:class:`WatchedPool` runs a check over such inputs in worker processes under a
per-input time bound and an address-space cap, and reports each input's outcome,
duration and peak memory, killing and replacing a worker that hangs.
"""

from __future__ import annotations

import functools
import io
import multiprocessing
import queue
import random
import re
import resource
import threading
import time
import traceback
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from helpers.pdfs import build_pdf

MiB = 1024 * 1024
GiB = 1024 * MiB

#: The seed every mutation derives from; change it to explore, keep it to reproduce.
SEED = 20260301

# -- building blocks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class HostilePdf:
    """One fuzz input."""

    #: What made it: ``"bit-flip"``, ``"deep-array"``, ``"flate-bomb"``, ``"hypothesis"`` …
    family: str
    #: Unique and file-name safe: ``"bit-flip-fpdf2-017"``.
    name: str
    data: bytes = field(repr=False)
    #: An upload must refuse it (a bomb, 10 000 levels of nesting, a page tree that lies).
    must_refuse: bool = False


def append_update(base: bytes, objects: dict[int, bytes], *, trailer: bytes = b"") -> bytes:
    """An incremental update of ``base`` that (re)defines ``objects`` (number -> body).

    ``/Prev`` is written as ten zero-padded digits, so tests can point it elsewhere
    with :func:`set_last_prev` without moving a byte.
    """
    found = re.findall(rb"startxref\s+(\d+)", base)
    size = max(objects) + 1
    sizes = re.findall(rb"/Size\s+(\d+)", base)
    if sizes:
        size = max(size, int(sizes[-1]))
    out = io.BytesIO()
    out.write(base if base.endswith(b"\n") else base + b"\n")
    offsets = {}
    for number, body in sorted(objects.items()):
        offsets[number] = out.tell()
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n")
    for number, offset in sorted(offsets.items()):
        out.write(b"%d 1\n%010d 00000 n \n" % (number, offset))
    root = re.findall(rb"/Root\s+(\d+\s+\d+\s+R)", base)
    out.write(
        b"trailer\n<< /Size %d /Root %s /Prev %010d %s >>\nstartxref\n%d\n%%%%EOF\n"
        % (size, root[-1] if root else b"1 0 R", int(found[-1]) if found else 0, trailer, xref)
    )
    return out.getvalue()


def set_last_prev(data: bytes, value: int, *, which: int = -1) -> bytes:
    """Point a ``/Prev`` written by :func:`append_update` at ``value`` (``which``: its index)."""
    match = list(re.finditer(rb"/Prev (\d{10})", data))[which]
    return data[: match.start(1)] + b"%010d" % value + data[match.end(1) :]


def last_startxref(data: bytes) -> int:
    return int(re.findall(rb"startxref\s+(\d+)", data)[-1])


def stream(data: bytes, extra: bytes = b"", *, length: bytes | None = None) -> bytes:
    """A stream object body; ``length`` overrides the (correct) ``/Length``."""
    declared = length if length is not None else b"%d" % len(data)
    return b"<< /Length " + declared + b" " + extra + b" >>\nstream\n" + data + b"\nendstream"


CATALOG = b"<< /Type /Catalog /Pages 2 0 R >>"
PAGES = b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>"
PAGE = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << >> >>"
CONTENT = stream(b"0 0 1 rg 72 720 200 50 re f")


def one_page(
    *, catalog: bytes = CATALOG, pages: bytes = PAGES, page: bytes = PAGE, extra=(), trailer=b""
) -> bytes:
    """The smallest sound one-page PDF, with parts replaced or objects 5, 6 … appended."""
    return build_pdf([catalog, pages, page, CONTENT, *extra], trailer=trailer)


# -- Flate bombs ------------------------------------------------------------------------------


@functools.cache
def _zero_mib_deflate() -> bytes:
    """Raw deflate blocks, byte aligned and free of back references, inflating to 1 MiB of zeros."""
    compressor = zlib.compressobj(9)
    compressor.compress(bytes(MiB))
    compressor.flush(zlib.Z_FULL_FLUSH)
    # After a full flush nothing refers back, so this block can follow any other full flush.
    return compressor.compress(bytes(MiB)) + compressor.flush(zlib.Z_FULL_FLUSH)


@functools.cache
def deflate_bomb(size: int, *, prefix: bytes = b"", layers: int = 1) -> bytes:
    """A valid zlib stream inflating to ``prefix`` followed by ``size`` bytes of zeros.

    One layer is about 1/1000 of ``size`` (deflate's limit); each further layer
    (``/Filter [/FlateDecode /FlateDecode]``) compresses the previous one again, so
    4 GiB fit in a few kilobytes.
    """
    compressor = zlib.compressobj(9)
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    mebibytes = max(1, size // MiB)
    checksum = zlib.adler32(prefix)
    low, high = checksum & 0xFFFF, checksum >> 16
    # Adler-32 over zeros: the low sum stays, the high sum grows by it once per byte.
    high = (high + mebibytes * MiB * low) % 65521
    data = head + _zero_mib_deflate() * mebibytes + b"\x03\x00" + ((high << 16) | low).to_bytes(4, "big")
    for _ in range(layers - 1):
        data = zlib.compress(data, 9)
    return data


def _filters(layers: int) -> bytes:
    return b"/Filter [" + b" /FlateDecode" * layers + b" ]"


def object_stream_pdf(
    bodies: Sequence[bytes], *, bomb: int = 0, layers: int = 2, declared_size: int | None = None
) -> bytes:
    """A PDF 1.5 file whose objects 1..n sit in an object stream, indexed by an xref stream.

    :param bomb: bytes of zeros inflated after the real objects (0: an honest object stream).
    :param declared_size: the xref stream's ``/Size`` (default: honest).
    """
    header = b" ".join(b"%d %d" % (number, offset) for number, offset in _object_offsets(bodies))
    payload = header + b"\n" + b"\n".join(bodies)
    first = len(header) + 1
    if bomb:
        data, filters = deflate_bomb(bomb, prefix=payload, layers=layers), _filters(layers)
    else:
        data, filters = zlib.compress(payload), _filters(1)
    n = len(bodies)
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    objstm_offset = out.tell()
    out.write(
        b"%d 0 obj\n" % (n + 1)
        + stream(data, b"/Type /ObjStm /N %d /First %d " % (n, first) + filters)
        + b"\nendobj\n"
    )
    xref_offset = out.tell()
    rows = [b"\x00\x00\x00\x00\x00\xff\xff"]
    rows += [b"\x02" + (n + 1).to_bytes(4, "big") + index.to_bytes(2, "big") for index in range(n)]
    rows += [b"\x01" + objstm_offset.to_bytes(4, "big") + b"\x00\x00"]
    rows += [b"\x01" + xref_offset.to_bytes(4, "big") + b"\x00\x00"]
    size = declared_size if declared_size is not None else n + 3
    out.write(
        b"%d 0 obj\n" % (n + 2)
        + stream(b"".join(rows), b"/Type /XRef /Size %d /W [1 4 2] /Root 1 0 R" % size)
        + b"\nendobj\nstartxref\n%d\n%%%%EOF\n" % xref_offset
    )
    return out.getvalue()


def _object_offsets(bodies: Sequence[bytes]) -> Iterator[tuple[int, int]]:
    offset = 0
    for number, body in enumerate(bodies, start=1):
        yield number, offset
        offset += len(body) + 1


def xref_stream_pdf(
    *, size: int | None = None, widths: bytes = b"[1 4 2]", extra: bytes = b"", rows: bytes | None = None
) -> bytes:
    """A one-page PDF indexed by an xref stream.

    :param size: the declared ``/Size`` (default: honest).
    :param extra: more entries for the xref stream's dictionary (``/Index``, ``/Filter``).
    :param rows: the stream's data (default: honest rows for ``/W [1 4 2]``).
    """
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate([CATALOG, PAGES, PAGE, CONTENT], start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref_offset = out.tell()
    if rows is None:
        rows = b"\x00\x00\x00\x00\x00\xff\xff" + b"".join(
            b"\x01" + offset.to_bytes(4, "big") + b"\x00\x00" for offset in [*offsets, xref_offset]
        )
    entries = b"/Type /XRef /Size %d /W %s %s /Root 1 0 R" % (6 if size is None else size, widths, extra)
    out.write(b"5 0 obj\n" + stream(rows, entries) + b"\nendobj\nstartxref\n%d\n%%%%EOF\n" % xref_offset)
    return out.getvalue()


# -- byte- and token-level mutations of real files --------------------------------------------------

Mutator = Callable[[bytes, random.Random], bytes]

_INTERESTING_NUMBERS = (
    b"0",
    b"-1",
    b"1",
    b"2147483647",
    b"2147483648",
    b"-2147483649",
    b"4294967296",
    b"9223372036854775807",
    b"99999999999999999999999",
    b"1e308",
    b"3.4",
    b"-0",
    b"00000000000000000000001",
)
_INTERESTING_TOKENS = (b"null", b"true", b"/", b"()", b"<>", b"[]", b"<<>>", b"0 0 R", b"99999 0 R", b"1 0 R")


def flip_bits(data: bytes, rng: random.Random) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 12)):
        position = rng.randrange(len(buffer))
        buffer[position] ^= 1 << rng.randrange(8)
    return bytes(buffer)


def flip_structural_bytes(data: bytes, rng: random.Random) -> bytes:
    """Replace delimiters (``<< >> [ ] ( ) /``) - the bytes a parser's state hangs on."""
    positions = [m.start() for m in re.finditer(rb"[<>\[\]()/]", data)]
    buffer = bytearray(data)
    for position in rng.sample(positions, min(len(positions), rng.randint(1, 6))):
        buffer[position] = rng.choice(b"<>[]()/ 0%\n")
    return bytes(buffer)


def truncate(data: bytes, rng: random.Random) -> bytes:
    # Half the time near the end, where startxref, the trailer and %%EOF live.
    if rng.random() < 0.5:
        return data[: len(data) - rng.randint(1, min(200, len(data) - 1))]
    return data[: rng.randrange(1, len(data))]


def _span(data: bytes, rng: random.Random) -> tuple[int, int]:
    start = rng.randrange(len(data))
    return start, min(len(data), start + rng.choice((1, 8, 64, 512, 4096)))


def duplicate_chunk(data: bytes, rng: random.Random) -> bytes:
    start, end = _span(data, rng)
    target = rng.randrange(len(data))
    return data[:target] + data[start:end] * rng.choice((1, 2, 50)) + data[target:]


def delete_chunk(data: bytes, rng: random.Random) -> bytes:
    start, end = _span(data, rng)
    return data[:start] + data[end:]


def corrupt_xref_offsets(data: bytes, rng: random.Random) -> bytes:
    """Point xref entries and ``startxref`` somewhere else (off by one, into a stream, past the end)."""
    targets = [(m.start(1), m.end(1), 10) for m in re.finditer(rb"(\d{10}) \d{5} [nf]", data)]
    targets += [(m.start(1), m.end(1), 0) for m in re.finditer(rb"startxref\s+(\d+)", data)]
    if not targets:
        return flip_bits(data, rng)
    buffer = data
    # Right to left, so a startxref that changes width does not shift the other targets.
    for start, end, width in sorted(rng.sample(targets, min(len(targets), rng.randint(1, 4))), reverse=True):
        old = int(buffer[start:end])
        new = rng.choice(
            (0, old + 1, max(0, old - 1), len(data), len(data) * 7, rng.randrange(len(data)), 10**9)
        )
        text = (b"%0*d" % (width, new))[-width:] if width else b"%d" % new
        buffer = buffer[:start] + text + buffer[end:]
    return buffer


def swap_object_numbers(data: bytes, rng: random.Random) -> bytes:
    """Swap the numbers of two object headers, or point a reference at another object."""
    headers = list(re.finditer(rb"(\d+) (\d+) obj", data))
    references = list(re.finditer(rb"(\d+) (\d+) R\b", data))
    if rng.random() < 0.5 and len(headers) >= 2:
        first, second = sorted(rng.sample(headers, 2), key=lambda m: m.start())
        return (
            data[: first.start(1)]
            + second.group(1)
            + data[first.end(1) : second.start(1)]
            + first.group(1)
            + data[second.end(1) :]
        )
    if not references:
        return flip_bits(data, rng)
    match = rng.choice(references)
    target = rng.choice([m.group(1) for m in headers] + [b"0", b"99999", b"4294967296"])
    return data[: match.start(1)] + target + data[match.end(1) :]


def absurd_lengths(data: bytes, rng: random.Random) -> bytes:
    """Give a stream a ``/Length`` that is huge, negative, zero, fractional or a dangling reference."""
    lengths = list(re.finditer(rb"/Length\s+(\d+)(?:\s+\d+\s+R)?", data))
    if not lengths:
        return flip_bits(data, rng)
    match = rng.choice(lengths)
    value = rng.choice(
        (b"99999999999", b"-5", b"0", b"1.5", b"9223372036854775808", b"99999 0 R", b"/Length")
    )
    return data[: match.start(1)] + value + data[match.end(0) :]


def interesting_tokens(data: bytes, rng: random.Random) -> bytes:
    """Replace numbers and names with boundary values and tokens of the wrong type."""
    tokens = list(re.finditer(rb"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])|/[A-Za-z]+", data[: 256 * 1024]))
    if not tokens:
        return flip_bits(data, rng)
    buffer = data
    for match in sorted(rng.sample(tokens, min(len(tokens), rng.randint(1, 5))), key=lambda m: -m.start()):
        replacement = rng.choice(_INTERESTING_NUMBERS + _INTERESTING_TOKENS)
        buffer = buffer[: match.start()] + replacement + buffer[match.end() :]
    return buffer


def nest_somewhere(data: bytes, rng: random.Random) -> bytes:
    """Wrap a value in a real document in thousands of array or dictionary levels."""
    keys = list(re.finditer(rb"/(Type|MediaBox|Kids|Resources|Producer|Fields|Annots)\b", data))
    if not keys:
        return flip_bits(data, rng)
    match = rng.choice(keys)
    depth = rng.choice((300, 3000, 20000))
    if rng.random() < 0.5:
        nested = b"[" * depth + b"1" + b"]" * depth
    else:
        nested = b"<</A " * depth + b"1" + b">>" * depth
    return data[: match.end()] + b" " + nested + b" /Ignored" + data[match.end() :]


def splice(data: bytes, rng: random.Random, other: bytes) -> bytes:
    """The head of one document joined to the tail of another."""
    return data[: rng.randrange(1, len(data))] + other[rng.randrange(len(other)) :]


MUTATORS: dict[str, Mutator] = {
    "bit-flip": flip_bits,
    "delimiters": flip_structural_bytes,
    "truncate": truncate,
    "duplicate-chunk": duplicate_chunk,
    "delete-chunk": delete_chunk,
    "xref-offsets": corrupt_xref_offsets,
    "object-numbers": swap_object_numbers,
    "absurd-length": absurd_lengths,
    "tokens": interesting_tokens,
    "nest": nest_somewhere,
}


def mutants(originals: dict[str, bytes], *, per_original: int, seed: int = SEED) -> list[HostilePdf]:
    """``per_original`` seeded mutations of each original, spread evenly over :data:`MUTATORS`.

    Every fourth mutant takes a second mutation on top, and a few per original are
    splices with another original.

    :param originals: kind -> bytes, e.g. from :class:`helpers.pdfs.TestDocuments`.
    """
    result = []
    names = sorted(originals)
    mutators = list(MUTATORS.items())
    for kind in names:
        rng = random.Random(f"{seed}-{kind}")  # noqa: S311 - reproducible, not secret
        data = originals[kind]
        for number in range(per_original):
            family, mutate = mutators[number % len(mutators)]
            if number % 17 == 16 and len(names) > 1:
                family = "splice"
                mutated = splice(data, rng, originals[rng.choice([n for n in names if n != kind])])
            else:
                mutated = mutate(data, rng)
                if number % 4 == 3:
                    mutated = mutators[rng.randrange(len(mutators))][1](mutated, rng) or mutated
            result.append(HostilePdf(family, f"{family}-{kind}-{number:03d}", mutated or b"%PDF-"))
    return result


# -- crafted attacks -----------------------------------------------------------------------------


def _deep_array(depth: int) -> bytes:
    return b"[" * depth + b"0" + b"]" * depth


def _deep_dict(depth: int) -> bytes:
    return b"<< /A " * depth + b"0" + b" >>" * depth


def _nesting_cases() -> Iterator[HostilePdf]:
    for shape, make in (("array", _deep_array), ("dict", _deep_dict)):
        for depth in (200, 10_000, 100_000):
            nested = make(depth)
            # Refusal is only promised where upload or signing reads the value.
            placements = {
                "catalog": (one_page(catalog=b"<< /Type /Catalog /Pages 2 0 R /X " + nested + b" >>"), True),
                "page": (one_page(page=PAGE[:-2] + b"/X " + nested + b" >>"), True),
                "trailer": (one_page(trailer=b"/X " + nested), True),
                "info": (one_page(extra=[b"<< /Title " + nested + b" >>"], trailer=b"/Info 5 0 R"), True),
                "field": (
                    one_page(
                        catalog=b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [5 0 R] >> >>",
                        extra=[b"<< /FT /Tx /T (a) /V " + nested + b" >>"],
                    ),
                    True,
                ),
                "stream-dict": (one_page(extra=[stream(b"x", b"/X " + nested)]), True),
                "unreferenced": (one_page(extra=[nested]), False),
            }
            for where, (data, must) in placements.items():
                yield HostilePdf(
                    f"deep-{shape}", f"deep-{shape}-{where}-{depth}", data, must and depth >= 10_000
                )
    # A page tree 10 000 levels deep: each /Pages node has one /Pages kid.
    depth = 10_000
    nodes = [
        b"<< /Type /Pages /Kids [%d 0 R] /Count 1 /Parent %d 0 R >>" % (n + 1, n - 1)
        for n in range(5, 5 + depth)
    ]
    nodes.append(b"<< /Type /Page /Parent %d 0 R /MediaBox [0 0 595 842] >>" % (4 + depth))
    tall = build_pdf([CATALOG, b"<< /Type /Pages /Kids [5 0 R] /Count 1 >>", b"null", b"null", *nodes])
    yield HostilePdf("deep-page-tree", "deep-page-tree-10000", tall, True)


def _cycle_cases() -> Iterator[HostilePdf]:
    page = b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>"
    cases = {
        "kids-self": (one_page(pages=b"<< /Type /Pages /Kids [2 0 R] /Count 1 >>"), True),
        "kids-two-node-loop": (
            build_pdf(
                [
                    CATALOG,
                    b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                    b"<< /Type /Pages /Kids [2 0 R] /Count 1 /Parent 2 0 R >>",
                ]
            ),
            True,
        ),
        "kids-loop-below-page": (
            build_pdf(
                [
                    CATALOG,
                    b"<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 >>",
                    page,
                    b"<< /Type /Pages /Kids [4 0 R] /Count 1 /Parent 2 0 R >>",
                ]
            ),
            True,
        ),
        "kids-same-page-twice": (one_page(pages=b"<< /Type /Pages /Kids [3 0 R 3 0 R] /Count 2 >>"), False),
        "parent-self": (one_page(pages=b"<< /Type /Pages /Kids [3 0 R] /Count 1 /Parent 2 0 R >>"), False),
        "page-parent-self": (one_page(page=PAGE.replace(b"/Parent 2 0 R", b"/Parent 3 0 R")), False),
        "root-is-pages": (one_page(catalog=b"<< /Type /Catalog /Pages 1 0 R >>"), True),
        "fields-kids-loop": (
            one_page(
                catalog=b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [5 0 R] >> >>",
                extra=[b"<< /T (a) /Kids [6 0 R] >>", b"<< /T (b) /Kids [5 0 R] /Parent 5 0 R >>"],
            ),
            True,
        ),
        "info-indirect-loop": (one_page(extra=[b"6 0 R", b"5 0 R"], trailer=b"/Info 5 0 R"), False),
        "length-self": (one_page(extra=[stream(b"abc", length=b"5 0 R")]), False),
        "outline-loop": (
            one_page(
                catalog=b"<< /Type /Catalog /Pages 2 0 R /Outlines 5 0 R >>",
                extra=[
                    b"<< /First 6 0 R /Last 6 0 R >>",
                    b"<< /Title (x) /Parent 5 0 R /Next 6 0 R /Prev 6 0 R >>",
                ],
            ),
            False,
        ),
        "metadata-self": (one_page(catalog=b"<< /Type /Catalog /Pages 2 0 R /Metadata 1 0 R >>"), False),
    }
    for name, (data, must) in cases.items():
        yield HostilePdf("cycle", f"cycle-{name}", data, must)


def _page_count_cases() -> Iterator[HostilePdf]:
    for label, count in (("billion", b"1000000000"), ("2-64", b"18446744073709551616"), ("five", b"5")):
        yield HostilePdf(
            "page-count",
            f"page-count-{label}",
            one_page(pages=b"<< /Type /Pages /Kids [3 0 R] /Count " + count + b" >>"),
            True,
        )
    yield HostilePdf(
        "page-count",
        "page-count-negative",
        one_page(pages=b"<< /Type /Pages /Kids [3 0 R] /Count -1 >>"),
        True,
    )
    # 20 000 real pages: more than a document for signing plausibly has, in 1.5 MB.
    n = 20_000
    kids = b" ".join(b"%d 0 R" % (3 + i) for i in range(n))
    pages = [b"<< /Type /Page /Parent 2 0 R >>"] * n
    yield HostilePdf(
        "page-count",
        "page-count-20000-pages",
        build_pdf([CATALOG, b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % n, *pages]),
        True,
    )
    # A page tree that claims 3 pages but hides 20 000.
    yield HostilePdf(
        "page-count",
        "page-count-hidden-pages",
        build_pdf([CATALOG, b"<< /Type /Pages /Kids [" + kids + b"] /Count 3 >>", *pages]),
        True,
    )


def _bomb_cases() -> Iterator[HostilePdf]:
    def contents(data: bytes, layers: int) -> bytes:
        return stream(data, _filters(layers))

    yield HostilePdf(
        "flate-bomb",
        "flate-bomb-content-1gib-1-layer",
        build_pdf([CATALOG, PAGES, PAGE, contents(deflate_bomb(GiB), 1)]),
        True,
    )
    yield HostilePdf(
        "flate-bomb",
        "flate-bomb-content-4gib-2-layers",
        build_pdf([CATALOG, PAGES, PAGE, contents(deflate_bomb(4 * GiB, layers=2), 2)]),
        True,
    )
    yield HostilePdf(
        "flate-bomb",
        "flate-bomb-content-64gib-3-layers",
        build_pdf([CATALOG, PAGES, PAGE, contents(deflate_bomb(64 * GiB, layers=3), 3)]),
        True,
    )
    yield HostilePdf(
        "flate-bomb",
        "flate-bomb-unreferenced-4gib",
        one_page(extra=[contents(deflate_bomb(4 * GiB, layers=2), 2)]),
        True,
    )
    yield HostilePdf(
        "flate-bomb",
        "flate-bomb-xmp-metadata-4gib",
        one_page(
            catalog=b"<< /Type /Catalog /Pages 2 0 R /Metadata 5 0 R >>",
            extra=[
                stream(
                    deflate_bomb(4 * GiB, prefix=b"<?xpacket begin='' ?>", layers=2),
                    b"/Type /Metadata /Subtype /XML " + _filters(2),
                )
            ],
        ),
        True,
    )
    yield HostilePdf(
        "flate-bomb",
        "flate-bomb-object-stream-4gib",
        object_stream_pdf([CATALOG, PAGES, PAGE.replace(b"/Contents 4 0 R ", b"")], bomb=4 * GiB),
        True,
    )
    yield HostilePdf(
        "flate-bomb",
        "flate-bomb-hex-then-flate",
        one_page(
            extra=[
                stream(
                    deflate_bomb(4 * GiB, layers=2).hex().encode() + b">",
                    b"/Filter [/ASCIIHexDecode /FlateDecode /FlateDecode]",
                )
            ]
        ),
        True,
    )
    xref_rows = deflate_bomb(4 * GiB, layers=2)
    yield HostilePdf(
        "flate-bomb",
        "flate-bomb-xref-stream-4gib",
        xref_stream_pdf(rows=xref_rows, extra=_filters(2)),
        True,
    )
    # A scanner reading the file in chunks must not lose an object cut in two by a chunk's end.
    bomb = stream(deflate_bomb(4 * GiB, layers=2), _filters(2))
    for label, edge in (("header", b" obj"), ("keyword", b"stream")):
        yield HostilePdf(
            "flate-bomb", f"flate-bomb-{label}-across-the-first-mebibyte", _across_mebibyte(bomb, edge), True
        )
    # The honest object stream, for contrast: must be accepted and signed.
    yield HostilePdf(
        "flate-bomb",
        "object-stream-honest",
        object_stream_pdf([CATALOG, PAGES, PAGE.replace(b"/Contents 4 0 R ", b"")]),
    )


def _across_mebibyte(body: bytes, edge: bytes) -> bytes:
    """A one-page PDF with ``body`` as object 6, placed so that ``edge`` in it straddles byte 1 MiB."""

    def build(filler: int) -> bytes:
        return append_update(one_page(), {5: b"(" + b"a" * filler + b")", 6: body})

    probe = build(MiB - 4096)
    at = probe.index(edge, probe.index(b"6 0 obj") + 2)
    return build(MiB - 4096 + (MiB - at) - len(edge) // 2)


def _xref_cases() -> Iterator[HostilePdf]:
    yield HostilePdf("xref-size", "xref-stream-honest", xref_stream_pdf())
    # No rows at all: a lenient reader fills in a default entry for every declared object.
    for label, size in (("million", 1_000_000), ("billion", 1_000_000_000)):
        cases = {
            "size": xref_stream_pdf(size=size, rows=b""),
            "zero-widths": xref_stream_pdf(size=size, widths=b"[0 0 0]", rows=b""),
            "index": xref_stream_pdf(extra=b"/Index [0 %d]" % size, rows=b""),
            "escaped-names": xref_stream_pdf(extra=b"/I#6edex [0 %d]" % size, rows=b"").replace(
                b"/Size", b"/S#69ze"
            ),
            "comment-before-value": xref_stream_pdf(size=size, rows=b"").replace(b"/Size ", b"/Size %x\n"),
        }
        for name, data in cases.items():
            yield HostilePdf("xref-size", f"xref-stream-{name}-{label}", data, True)
        yield HostilePdf(
            "xref-size",
            f"object-stream-declared-size-{label}",
            object_stream_pdf([CATALOG, PAGES, PAGE.replace(b"/Contents 4 0 R ", b"")], declared_size=size),
            True,
        )
    yield HostilePdf(
        "xref-size", "xref-table-size-billion", one_page().replace(b"/Size 5", b"/Size 1000000000")
    )
    yield HostilePdf(
        "xref-size",
        "xref-table-subsection-billion",
        one_page().replace(b"xref\n0 5\n", b"xref\n0 1000000000\n"),
    )


def _encryption_cases() -> Iterator[HostilePdf]:
    dicts = {
        "unknown-version": b"<< /Filter /Standard /V 99 /R 99 >>",
        "missing-keys": b"<< /Filter /Standard >>",
        "wrong-types": b"<< /Filter /Standard /V (x) /R [1] /O 5 /U /X /P (y) /Length -40 >>",
        "aes-junk-keys": (
            b"<< /Filter /Standard /V 5 /R 6 /Length 256 /O <00> /U <00> /OE <00> /UE <00> "
            b"/P -4 /Perms <00> >>"
        ),
        "pubsec-junk": b"<< /Filter /Adobe.PubSec /SubFilter /adbe.pkcs7.s5 /V 4 /Recipients [<3000>] >>",
        "unknown-handler": b"<< /Filter /NoSuchHandler /V 2 >>",
        "crypt-filters-loop": (
            b"<< /Filter /Standard /V 4 /R 4 /CF << /StdCF 5 0 R >> /StmF /StdCF /StrF /StdCF >>"
        ),
    }
    for name, body in dicts.items():
        yield HostilePdf(
            "encryption", f"encryption-{name}", one_page(extra=[body], trailer=b"/Encrypt 5 0 R"), True
        )
    yield HostilePdf("encryption", "encryption-dangling", one_page(trailer=b"/Encrypt 99 0 R"), True)
    yield HostilePdf("encryption", "encryption-number", one_page(trailer=b"/Encrypt 7"), True)
    yield HostilePdf("encryption", "encryption-null", one_page(trailer=b"/Encrypt null"), True)
    yield HostilePdf(
        "encryption",
        "encryption-direct-junk",
        one_page(trailer=b"/Encrypt << /Filter /Standard /V 2 /R 3 >>"),
        True,
    )
    yield HostilePdf(
        "encryption",
        "encryption-in-update",
        append_update(one_page(), {5: dicts["unknown-version"]}, trailer=b"/Encrypt 5 0 R"),
        True,
    )
    yield HostilePdf(
        "encryption",
        "crypt-filter-on-stream",
        one_page(extra=[stream(b"abc", b"/Filter /Crypt /DecodeParms << /Name /StdCF >>")]),
    )


def _prev_chain_cases() -> Iterator[HostilePdf]:
    base = one_page()
    once = append_update(base, {3: PAGE.replace(b"595", b"600")})
    twice = append_update(once, {3: PAGE.replace(b"595", b"610")})
    cases = {
        "self": set_last_prev(once, last_startxref(once)),
        "two-revision-loop": set_last_prev(twice, last_startxref(twice), which=0),
        "into-stream": set_last_prev(once, base.index(b"stream") + 7),
        "into-object": set_last_prev(once, base.index(b"2 0 obj") + 2),
        "past-end": set_last_prev(once, 9_999_999_999),
        "zero": set_last_prev(once, 0),
        "negative": once.replace(b"/Prev ", b"/Prev -1 /Ignored "),
        "huge-number": once.replace(b"/Prev ", b"/Prev 9999999999999999999999999 /Ignored "),
        "not-a-number": once.replace(b"/Prev ", b"/Prev (twelve) /Ignored "),
        "reference": once.replace(b"/Prev ", b"/Prev 4 0 R /Ignored "),
    }
    for name, data in cases.items():
        yield HostilePdf("prev-chain", f"prev-chain-{name}", data)
    many = base
    for number in range(300):
        many = append_update(many, {5: b"<< /Revision %d >>" % number})
    yield HostilePdf("prev-chain", "prev-chain-300-revisions", many)


def _end_of_file_cases() -> Iterator[HostilePdf]:
    # Readers find the xref by reading backwards from the end, line by line; pyHanko does it
    # a byte at a time, so one line of megabytes at the end costs seconds per megabyte.
    sound = one_page()
    yield HostilePdf("end-of-file", "end-of-file-16-mib-last-line", sound + b"x" * (16 * MiB), True)
    yield HostilePdf(
        "end-of-file", "end-of-file-marker-after-16-mib-line", sound[:-6] + b" " * (16 * MiB) + b"%%EOF", True
    )
    yield HostilePdf(
        "end-of-file", "end-of-file-startxref-glued", sound.replace(b"\nstartxref", b" startxref")
    )
    yield HostilePdf("end-of-file", "end-of-file-garbage-after-marker", sound + b"\r\n\x00garbage\n" * 20)
    yield HostilePdf("end-of-file", "end-of-file-crlf", sound.replace(b"\n", b"\r\n"))


def _check_cost_cases() -> Iterator[HostilePdf]:
    # Inputs aimed at the upload check's own scans, not at pyHanko: each made an early
    # version of the check quadratic or exponential. Hidden in a stream, where no parser looks.
    def hidden(junk: bytes) -> bytes:
        return append_update(one_page(), {5: stream(junk)})

    yield HostilePdf(
        "check-cost", "check-cost-object-headers-without-keywords", hidden(b"1 0 obj " * 130_000)
    )
    yield HostilePdf("check-cost", "check-cost-comment-backtracking", hidden(b"/S%" * 350_000))
    yield HostilePdf("check-cost", "check-cost-size-then-comment", hidden(b"/Size%" * 170_000))
    yield HostilePdf(
        "xref-size",
        "xref-size-behind-a-long-comment",
        hidden(b"<< /Size %" + b"x" * 5000 + b"\n 1000000000 >>"),
        True,
    )
    tiny = b"".join(
        b"%d 0 obj<</Length 0/Filter/FlateDecode>>stream\n\nendstream endobj\n" % n for n in range(60_000)
    )
    yield HostilePdf("stream-count", "stream-count-60000-empty-streams", hidden(tiny), True)


def crafted() -> list[HostilePdf]:
    """Every hand-built attack, in a fixed order."""
    return [
        *_nesting_cases(),
        *_cycle_cases(),
        *_page_count_cases(),
        *_bomb_cases(),
        *_xref_cases(),
        *_encryption_cases(),
        *_prev_chain_cases(),
        *_end_of_file_cases(),
        *_check_cost_cases(),
    ]


# -- hypothesis: syntactically plausible PDFs --------------------------------------------------------

_names = st.sampled_from(
    [
        "/Type",
        "/Pages",
        "/Page",
        "/Kids",
        "/Count",
        "/Parent",
        "/MediaBox",
        "/Contents",
        "/Resources",
        "/Annots",
        "/AcroForm",
        "/Fields",
        "/FT",
        "/Sig",
        "/V",
        "/T",
        "/Length",
        "/Filter",
        "/FlateDecode",
        "/ASCIIHexDecode",
        "/DecodeParms",
        "/Predictor",
        "/Columns",
        "/Metadata",
        "/Info",
        "/Encrypt",
        "/Catalog",
        "/Names",
        "/Outlines",
        "/Perms",
        "/DocMDP",
        "/ByteRange",
        "/Widget",
        "/Rect",
        "/P",
        "/Version",
        "/Extensions",
        "/DSS",
        "/A#42",
        "/",
        "/\u00e5\u00e4\u00f6",
    ]
).map(lambda name: name.encode("utf-8"))


def _number(draw_int: int) -> bytes:
    return b"%d" % draw_int


_scalars = st.one_of(
    st.just(b"null"),
    st.sampled_from([b"true", b"false"]),
    st.integers(min_value=-(2**65), max_value=2**65).map(_number),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(lambda f: repr(f).encode()),
    _names,
    st.binary(max_size=40).map(
        lambda b: b"(" + b.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"
    ),
    st.binary(max_size=20).map(lambda b: b"<" + b.hex().encode() + b">"),
    st.tuples(st.integers(0, 12), st.integers(0, 2)).map(lambda ref: b"%d %d R" % ref),
)


def _array(items: list[bytes]) -> bytes:
    return b"[" + b" ".join(items) + b"]"


def _dictionary(pairs: list[tuple[bytes, bytes]]) -> bytes:
    return b"<<" + b" ".join(key + b" " + value for key, value in pairs) + b">>"


_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(_array),
        st.lists(st.tuples(_names, children), max_size=4).map(_dictionary),
    ),
    max_leaves=8,
)


@st.composite
def _stream_object(draw: st.DrawFn) -> bytes:
    payload = draw(st.binary(max_size=300) | st.just(b"BT /F1 12 Tf (Hello) Tj ET"))
    encoding = draw(st.sampled_from(["none", "flate", "flate-broken", "hex", "flate-twice"]))
    if encoding == "flate":
        payload, filters = zlib.compress(payload), b"/Filter /FlateDecode"
    elif encoding == "flate-broken":
        payload, filters = zlib.compress(payload)[: max(1, len(payload) // 2)], b"/Filter /FlateDecode"
    elif encoding == "hex":
        payload, filters = payload.hex().encode() + b">", b"/Filter /ASCIIHexDecode"
    elif encoding == "flate-twice":
        payload, filters = zlib.compress(zlib.compress(payload)), _filters(2)
    else:
        filters = b""
    length = draw(st.sampled_from([None, None, None, b"0", b"-3", b"99999999", b"6 0 R"]))
    extra = draw(
        st.lists(st.tuples(_names, _values), max_size=3).map(
            lambda pairs: b" ".join(k + b" " + v for k, v in pairs)
        )
    )
    return stream(payload, filters + b" " + extra, length=length)


@st.composite
def plausible_pdfs(draw: st.DrawFn) -> bytes:
    """A PDF that a lenient parser would at least try to read.

    A catalog, a page tree and pages of plausible shape, random values in random
    places, streams with real and broken filters, optional signature fields and
    info dictionaries, a correct or damaged cross-reference table, and sometimes
    an incremental update on top.
    """
    pages = draw(st.integers(min_value=0, max_value=3))
    page_numbers = list(range(3, 3 + pages))
    declared_count = draw(st.sampled_from([pages, pages, pages, 0, pages + 1, 2**31, -1]))
    kids = b" ".join(b"%d 0 R" % n for n in page_numbers)
    extra_entries = draw(st.lists(st.tuples(_names, _values), max_size=3))
    catalog = _dictionary([(b"/Type", b"/Catalog"), (b"/Pages", b"2 0 R"), *extra_entries])
    pages_node = _dictionary(
        [
            (b"/Type", b"/Pages"),
            (b"/Kids", b"[" + kids + b"]"),
            (b"/Count", b"%d" % declared_count),
            *draw(st.lists(st.tuples(_names, _values), max_size=2)),
        ]
    )
    objects = [catalog, pages_node]
    for _ in page_numbers:
        objects.append(
            _dictionary(
                [
                    (b"/Type", b"/Page"),
                    (b"/Parent", b"2 0 R"),
                    (b"/MediaBox", b"[0 0 595 842]"),
                    *draw(st.lists(st.tuples(_names, _values), max_size=3)),
                ]
            )
        )
    objects += draw(st.lists(st.one_of(_values, _stream_object()), max_size=4))
    if draw(st.booleans()):
        # A signature field, filled or not, hung on the catalog.
        objects.append(_dictionary([(b"/FT", b"/Sig"), (b"/T", b"(Signature1)"), (b"/V", draw(_values))]))
        objects[0] = objects[0][:-2] + b" /AcroForm << /Fields [%d 0 R] >> >>" % len(objects)
    trailer = b""
    if draw(st.booleans()):
        trailer = b"/Info %d 0 R" % draw(st.integers(1, len(objects) + 2))
    data = build_pdf(
        objects, trailer=trailer, version=draw(st.sampled_from([b"1.4", b"1.7", b"2.0", b"9.9"]))
    )
    damage = draw(st.sampled_from(["none", "none", "none", "xref", "startxref", "eof"]))
    if damage == "xref":
        data = re.sub(rb"\d{10} 00000 n", b"0000000009 00000 n", data, count=draw(st.integers(1, 3)))
    elif damage == "startxref":
        data = re.sub(rb"startxref\n\d+", b"startxref\n%d" % draw(st.integers(0, len(data) + 10)), data)
    elif damage == "eof":
        data = data[: -draw(st.integers(1, 30))]
    if draw(st.booleans()):
        number = draw(st.integers(1, len(objects) + 3))
        data = append_update(
            data, {number: draw(_values)}, trailer=draw(st.sampled_from([b"", b"/Prev 0", b"/Info 1 0 R"]))
        )
    return data


def hypothesis_examples(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """Draw ``count`` examples from ``strategy``, the same ones on every run and machine.

    Drawn through a derandomized ``@given`` (no example database, no shrinking), so the
    list depends only on the strategy and hypothesis' version.
    """
    drawn: list[Any] = []

    @settings(
        derandomize=True,
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(example: Any) -> None:
        drawn.append(example)

    collect()
    return drawn


# -- running untrusted inputs under a watchdog -----------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What happened to one input in a worker."""

    name: str
    #: Set by the check: e.g. ``"signed"``, ``"refused"``; ``"hang"`` and ``"died"`` come from the pool.
    verdict: str
    #: An error class name, or a short label.
    kind: str = ""
    message: str = ""
    seconds: float = 0.0
    #: Growth of the worker's peak resident memory over its idle baseline, in MiB.
    peak_mib: float = 0.0


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _worker_main(connection, initializer, initargs, check, address_space: int) -> None:
    # The cap turns a runaway allocation into a MemoryError here instead of the OOM
    # killer picking a victim on the test machine.
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    if initializer is not None:
        initializer(*initargs)
    baseline = _rss_mib()
    connection.send(("ready", baseline))
    while True:
        try:
            item = connection.recv()
        except EOFError:
            return
        if item is None:
            return
        name, data = item
        started = time.perf_counter()
        try:
            verdict, kind, message = check(data)
        except MemoryError:
            verdict, kind, message = "memory", "MemoryError", "the address-space cap was hit"
        except BaseException as exc:  # a bug in the check itself must reach the report, not kill the pool
            verdict, kind, message = "crash", type(exc).__name__, traceback.format_exc()
        connection.send(
            Outcome(
                name, verdict, kind, message, time.perf_counter() - started, max(0.0, _rss_mib() - baseline)
            )
        )


class WatchedPool:
    """Worker processes that run ``check(data) -> (verdict, kind, message)`` on untrusted inputs.

    Each worker serves one input at a time. An input that takes longer than ``timeout``
    seconds gets the verdict ``"hang"`` and its worker is killed and replaced; a worker
    that dies (segfault, OOM kill) gives ``"died"``. Workers are forked from a clean
    forkserver, never from the test process (whose threads - a test web server, a mail
    catcher - must not be copied mid-lock).

    :param check: a module-level function (workers import it by name).
    :param initializer: called once in each new worker with ``initargs``, e.g. to load a PKI.
    :param address_space: the worker's ``RLIMIT_AS`` in bytes.
    """

    def __init__(
        self,
        check: Callable[[bytes], tuple[str, str, str]],
        *,
        initializer: Callable[..., None] | None = None,
        initargs: tuple = (),
        workers: int = 2,
        timeout: float = 10.0,
        address_space: int = 4 * GiB,
    ) -> None:
        self._check = check
        self._initializer = initializer
        self._initargs = initargs
        self._workers = workers
        self._timeout = timeout
        self._address_space = address_space
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(["helpers.mutations", "esign.plone.signing"])
        #: Idle peak RSS of each worker started, in MiB.
        self.baselines: list[float] = []
        self.restarts = 0

    def _start(self) -> tuple[Any, Any]:
        parent, child = self._context.Pipe()
        process = self._context.Process(
            target=_worker_main,
            args=(child, self._initializer, self._initargs, self._check, self._address_space),
            daemon=True,
        )
        process.start()
        child.close()
        if not parent.poll(120):
            process.kill()
            raise RuntimeError("a fuzz worker did not start within 120 s")
        _ready, baseline = parent.recv()
        self.baselines.append(baseline)
        return process, parent

    def _serve(self, jobs: queue.Queue, results: list[Outcome]) -> None:
        process, connection = self._start()
        try:
            while True:
                try:
                    index, item = jobs.get_nowait()
                except queue.Empty:
                    connection.send(None)
                    process.join(10)
                    return
                connection.send((item.name, item.data))
                if connection.poll(self._timeout):
                    try:
                        results[index] = connection.recv()
                        continue
                    except EOFError:
                        verdict, message = "died", f"the worker died (exit code {process.exitcode})"
                else:
                    verdict, message = "hang", f"no answer within {self._timeout:.0f} s"
                results[index] = Outcome(item.name, verdict, verdict, message, self._timeout)
                process.kill()
                process.join()
                self.restarts += 1
                process, connection = self._start()
        finally:
            if process.is_alive():
                process.kill()
            process.join()

    def run(self, items: Iterable[HostilePdf]) -> list[Outcome]:
        """Run every input; the outcomes come back in input order."""
        items = list(items)
        jobs: queue.Queue = queue.Queue()
        # Slow inputs first, so a few heavy ones do not end up alone at the tail.
        for index, item in sorted(enumerate(items), key=lambda pair: -len(pair[1].data)):
            jobs.put((index, item))
        results: list[Any] = [None] * len(items)
        errors: list[BaseException] = []

        def serve() -> None:
            try:
                self._serve(jobs, results)
            except BaseException as exc:  # surfaced below; a thread's exception would vanish
                errors.append(exc)

        threads = [threading.Thread(target=serve, daemon=True) for _ in range(self._workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return results
