"""Hypothesis profiles and mutation strategies shared by the fuzz tests.

``NIMBUS_FUZZ_PROFILE`` picks the profile: ``ci`` (the default) keeps every
fuzz test of tests/security/ together within a few minutes on a loaded
2-core machine; ``long`` is for an engineer's run (about a hundred times the
examples, no time limit per example, failures kept under var/ to be tried
first next time). Each test sets its own share of examples with
:func:`examples`, scaled by the profile.
"""

import os
import struct
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

ROOT = Path(__file__).resolve().parents[2]

settings.register_profile(
    "ci",
    deadline=None,  # a shared CI machine's pauses are not the code's
    database=None,  # nothing written into the work tree
    print_blob=True,  # a failure prints the line that replays it
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "long",
    deadline=None,
    database=DirectoryBasedExampleDatabase(str(ROOT / "var" / "hypothesis")),
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PROFILE = os.environ.get("NIMBUS_FUZZ_PROFILE", "ci")
settings.load_profile(PROFILE)

SCALE = {"ci": 1, "long": 100}.get(PROFILE, 1)


def examples(ci_count: int) -> settings:
    """Settings for one test: ``ci_count`` examples in CI, scaled up in ``long``."""
    return settings(max_examples=ci_count * SCALE)


# --- Mutating real files -------------------------------------------------------


@st.composite
def bit_flips(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with a few bits flipped, mostly in the header where parsing happens."""
    mutated = bytearray(data)
    header_end = min(len(data), 4096)
    for _ in range(draw(st.integers(1, 8))):
        in_header = draw(st.booleans())
        position = draw(st.integers(0, (header_end if in_header else len(data)) - 1))
        mutated[position] ^= 1 << draw(st.integers(0, 7))
    return bytes(mutated)


@st.composite
def truncations(draw: st.DrawFn, data: bytes) -> bytes:
    return data[: draw(st.integers(0, len(data) - 1))]


@st.composite
def length_corruptions(draw: st.DrawFn, data: bytes) -> bytes:
    """A 16- or 32-bit little-endian field near the start overwritten.

    Element lengths follow the tag (and the VR in explicit VR): writing a
    large, odd, zero or undefined (0xFFFFFFFF) value at an arbitrary even
    offset hits them often.
    """
    mutated = bytearray(data)
    header_end = min(len(data), 4096) - 4
    for _ in range(draw(st.integers(1, 3))):
        offset = draw(st.integers(128, header_end)) & ~1
        if draw(st.booleans()):
            value = draw(st.sampled_from([0, 1, 0xFFFF, 0x7FFF, 0xFFFE]))
            mutated[offset : offset + 2] = struct.pack("<H", value)
        else:
            value = draw(
                st.sampled_from([0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x10000000, 3])
                | st.integers(0, 2**32 - 1)
            )
            mutated[offset : offset + 4] = struct.pack("<I", value)
    return bytes(mutated)


@st.composite
def spliced_elements(draw: st.DrawFn, data: bytes) -> bytes:
    """A random element (tag, VR, length, value) inserted at an even offset."""
    tag_group = draw(st.sampled_from([0x0008, 0x0010, 0x0020, 0x0028, 0x7FE0]))
    tag_element = draw(st.integers(0, 0xFFFF))
    vr = draw(
        st.sampled_from(
            [b"PN", b"DA", b"UI", b"SQ", b"OB", b"OW", b"US", b"IS", b"DS", b"UN"]
        )
        | st.binary(min_size=2, max_size=2)
    )
    value = draw(st.binary(max_size=64))
    length = draw(st.sampled_from([len(value), 0xFFFF, 0]))
    element = struct.pack("<HH", tag_group, tag_element) + vr
    if vr in (b"SQ", b"OB", b"OW", b"UN"):
        element += b"\0\0" + struct.pack(
            "<I", draw(st.sampled_from([len(value), 0xFFFFFFFF]))
        )
    else:
        element += struct.pack("<H", length)
    element += value
    offset = draw(st.integers(132, min(len(data), 4096))) & ~1
    return data[:offset] + element + data[offset:]


def mutations(data: bytes) -> st.SearchStrategy[bytes]:
    """One or two mutations of a real file, of any of the kinds above."""
    one = st.one_of(
        bit_flips(data),
        truncations(data),
        length_corruptions(data),
        spliced_elements(data),
    )
    return one | one.flatmap(
        lambda first: (
            st.one_of(
                bit_flips(first), length_corruptions(first), spliced_elements(first)
            )
            if len(first) > 200
            else st.just(first)
        )
    )
