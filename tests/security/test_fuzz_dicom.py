"""Fuzzing the DICOM parsing entry points with real files, mutated.

Each test takes real files from shared/data/dicom and breaks them the way a
faulty or hostile modality would (bit flips, truncation, corrupted element
lengths, spliced elements of random tag and VR), or builds image data sets
from random attributes, and checks that the entry point answers in its
documented way: a refusal or a quarantine with a reason, an error image, a
QueryError; never an exception that would end an association or a request.
Budget: tests/support/fuzzing.py.
"""

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from django.http import QueryDict
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from conftest import SHARED_DATA
from pacs import spool
from pacs.dicomweb.multipart import MultipartError, Part, read_parts
from pacs.dicomweb.qido import parse_search, search
from pacs.dicomweb.stow import PartRefused, _checked_dataset
from pacs.dimse.listener import header_is_readable
from pacs.ingest import do_ingest_spooled_files
from pacs.models import IngestFailure, Instance, PixelStatus, Study
from pacs.query.engine import Level, build_query, find, identifier_keys
from pacs.query.matching import QueryError
from tests.support.fuzzing import examples, mutations
from viewer.rendering import render_frame

PYDICOM = SHARED_DATA / "pydicom"
SEEDS = [
    PYDICOM / name
    for name in (
        "CT_small.dcm",
        "MR_small.dcm",
        "MR_small_implicit.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_jp2klossless.dcm",
        "JPGExtended.dcm",
        "SC_rgb_jpeg_gdcm.dcm",
        "SC_ybr_full_422_uncompressed.dcm",
        "examples_palette.dcm",
        "image_dfl.dcm",
        "test-SR.dcm",
    )
]
SEED_BYTES = {path.name: path.read_bytes() for path in SEEDS}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def mutated_files() -> st.SearchStrategy[tuple[str, bytes]]:
    return st.sampled_from(sorted(SEED_BYTES)).flatmap(
        lambda name: st.tuples(st.just(name), mutations(SEED_BYTES[name]))
    )


def sop_instance_uid(name: str) -> str:
    return str(pydicom.dcmread(PYDICOM / name, stop_before_pixels=True).SOPInstanceUID)


# --- The listener's check before it acknowledges a C-STORE ---------------------


@examples(300)
@given(mutated_files())
def test_the_listener_check_answers_yes_or_no_for_any_bytes(sample):
    name, data = sample

    assert header_is_readable(data, sop_instance_uid(name)) in (True, False)


def test_the_listener_check_accepts_every_seed_file_unchanged():
    for name, data in SEED_BYTES.items():
        assert header_is_readable(data, sop_instance_uid(name)), name


# --- Ingest of a spooled file ----------------------------------------------------


@pytest.mark.django_db
@examples(60)
@given(sample=mutated_files())
def test_ingest_indexes_or_quarantines_a_mutated_file_with_a_reason(
    tenant_a, storage_dirs, sample
):
    _name, data = sample
    path = spool.write_durably(tenant_a.schema_name, data)
    failures_before = IngestFailure.objects.count()

    results = do_ingest_spooled_files([path], "FUZZER")

    assert not path.exists(), "the spool must never keep a file it read"
    if results:
        assert Instance.objects.filter(
            sop_instance_uid=results[0].sop_instance_uid
        ).exists()
    else:
        failure = IngestFailure.objects.order_by("-pk").first()
        assert IngestFailure.objects.count() == failures_before + 1
        assert failure is not None and failure.error
        assert Path(failure.quarantine_path).read_bytes() == data


# --- STOW-RS: the multipart body and each part ---------------------------------


@examples(200)
@given(sample=mutated_files())
def test_stow_checks_a_mutated_part_into_a_dataset_or_a_failure_reason(sample):
    _name, data = sample
    part = Part({"content-type": "application/dicom"}, data)

    try:
        ds = _checked_dataset(part, None)
    except PartRefused as refused:
        assert refused.reason in (0xA900, 0xC000, 0xC122)
    else:
        assert isinstance(ds, Dataset)


BOUNDARY = "nimbusfuzz"
PART_PIECES = st.sampled_from(
    [
        b"--" + BOUNDARY.encode(),
        b"--" + BOUNDARY.encode() + b"--",
        b"\r\n",
        b"\r\n\r\n",
        b"Content-Type: application/dicom",
        b"Content-Type:",
        b":",
        b"DICM",
    ]
) | st.binary(max_size=40)


@examples(300)
@given(pieces=st.lists(PART_PIECES, max_size=30))
def test_a_multipart_body_reads_as_parts_or_a_multipart_error(pieces):
    body = io.BytesIO(b"".join(pieces))

    try:
        parts = list(read_parts(body, BOUNDARY))
    except MultipartError:
        return
    assert all(isinstance(part.content, bytes) for part in parts)


# --- Rendering a frame -----------------------------------------------------------


def render_bytes(storage_dirs: Path, data: bytes, frames: int = 1, **options):  # type: ignore[no-untyped-def]
    """Render frame 0 of ``data`` as if ingest had found its pixel data sound."""
    stored = storage_dirs / "storage" / "fuzz" / "frame.dcm"
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(data)
    instance = Instance(
        sop_instance_uid="1.2.3",
        storage_path="fuzz/frame.dcm",
        pixel_status=PixelStatus.OK,
        number_of_frames=frames,
    )
    return render_frame(instance, 0, **options)


def assert_a_png(rendered) -> None:  # type: ignore[no-untyped-def]
    assert rendered.png.startswith(PNG_SIGNATURE)
    Image.open(io.BytesIO(rendered.png)).verify()


WINDOWS = st.none() | st.tuples(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(allow_nan=True, allow_infinity=True),
)


@examples(120)
@given(
    sample=mutated_files(),
    window=WINDOWS,
    voi_index=st.integers(-2, 5),
    voi_function=st.sampled_from([None, "LINEAR", "LINEAR_EXACT", "SIGMOID", "BOGUS"]),
)
def test_a_mutated_file_renders_as_an_image_or_an_error_image(
    storage_dirs, sample, window, voi_index, voi_function
):
    _name, data = sample

    rendered = render_bytes(
        storage_dirs,
        data,
        window=window,
        voi_index=voi_index,
        voi_function=voi_function,
        max_size=128,
    )

    assert_a_png(rendered)


def test_every_seed_with_pixels_renders_without_an_error(storage_dirs):
    for name, data in SEED_BYTES.items():
        if name != "test-SR.dcm":
            assert not render_bytes(storage_dirs, data).error, name


PHOTOMETRICS = [
    "MONOCHROME1",
    "MONOCHROME2",
    "RGB",
    "YBR_FULL",
    "YBR_FULL_422",
    "PALETTE COLOR",
    "ARGB",
    "",
]
DECIMALS = st.floats(allow_nan=False, allow_infinity=False, width=32).map(
    lambda value: f"{value:.6g}"[:16]
) | st.sampled_from(["", "abc", "1e400", "-0", "NaN"])


def set_raw(ds: Dataset, keyword: str, text: str) -> None:
    """Put ``text`` in ``ds`` as the bytes a peer sent, unchecked, in UTF-8."""
    tag = Tag(tag_for_keyword(keyword))
    value = text.encode("utf-8")
    value += b" " * (len(value) % 2)
    ds[tag] = RawDataElement(tag, dictionary_VR(tag), len(value), value, 0, False, True)


@st.composite
def image_datasets(draw: st.DrawFn) -> bytes:
    """An uncompressed image data set of random geometry and grayscale attributes."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    rows, columns = draw(st.integers(0, 48)), draw(st.integers(0, 48))
    bits = draw(st.sampled_from([1, 8, 16, 32, 12, 64]))
    samples = draw(st.sampled_from([1, 3, 4, 0]))
    frames = draw(st.integers(1, 3))
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated = bits
    ds.BitsStored = draw(st.integers(0, bits + 2))
    ds.HighBit = draw(st.integers(0, bits + 2))
    ds.PixelRepresentation = draw(st.sampled_from([0, 1, 2]))
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = draw(st.sampled_from(PHOTOMETRICS))
    if samples > 1:
        ds.PlanarConfiguration = draw(st.sampled_from([0, 1, 2]))
    if frames > 1:
        ds.NumberOfFrames = frames
    for keyword in ("RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth"):
        if draw(st.booleans()):
            set_raw(ds, keyword, draw(DECIMALS))
    if draw(st.booleans()):
        ds.VOILUTFunction = draw(
            st.sampled_from(["LINEAR", "SIGMOID", "LINEAR_EXACT", "X"])
        )
    if draw(st.booleans()):
        ds.PresentationLUTShape = draw(st.sampled_from(["IDENTITY", "INVERSE", "?"]))
    expected = rows * columns * max(samples, 1) * frames * max(bits, 8) // 8
    size = draw(st.sampled_from([expected, expected // 2, expected + 1, 0]))
    ds.PixelData = np.random.default_rng(draw(st.integers(0, 9))).bytes(size + size % 2)
    buffer = io.BytesIO()
    with pydicom.config.disable_value_validation():
        ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@examples(150)
@given(data=image_datasets(), window=WINDOWS, voi_index=st.integers(0, 2))
def test_a_random_image_data_set_renders_as_an_image_or_an_error_image(
    storage_dirs, data, window, voi_index
):
    rendered = render_bytes(storage_dirs, data, window=window, voi_index=voi_index)

    assert_a_png(rendered)


# --- QIDO-RS and C-FIND matching keys -------------------------------------------

MATCH_KEYS = [
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "StudyDate",
    "StudyTime",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "AccessionNumber",
    "ModalitiesInStudy",
    "Modality",
    "SeriesNumber",
    "InstanceNumber",
    "ReferringPhysicianName",
    "StudyDescription",
    "00100010",
    "00080020",
    "limit",
    "offset",
    "fuzzymatching",
    "includefield",
]
# The characters that mean something to a matcher, a parser or PostgreSQL.
TRICKY_TEXT = st.text(
    st.sampled_from("\x00\x01\x1b\t*?^=\\-.,:%_[(09 aZéÆ山"), max_size=20
)
QUERY_TEXT = (
    TRICKY_TEXT
    | st.text(max_size=30)
    | st.from_regex(r"\A[0-9*?\-.,\\^=]{0,20}\Z")
    | st.sampled_from(["*", "-", "20240101-", "-20240101", "20241301", "1.2.3,1.2..4"])
)


@pytest.mark.django_db
@examples(150)
@given(
    params=st.lists(st.tuples(st.sampled_from(MATCH_KEYS), QUERY_TEXT), max_size=5),
    level=st.sampled_from([Level.STUDY, Level.SERIES, Level.IMAGE]),
)
def test_a_qido_search_parses_into_a_query_or_a_query_error(tenant_a, params, level):
    query = QueryDict(mutable=True)
    for name, value in params:
        query.appendlist(name, value)

    try:
        parsed = parse_search(query, level)
    except QueryError:
        return
    search(Study.objects.all(), parsed)


PN_OR_TEXT = TRICKY_TEXT | st.text(max_size=24)
IDENTIFIER_VALUES = {
    "PatientName": PN_OR_TEXT,
    "PatientID": PN_OR_TEXT,
    "PatientBirthDate": QUERY_TEXT,
    "StudyDate": QUERY_TEXT,
    "StudyTime": QUERY_TEXT,
    "StudyInstanceUID": QUERY_TEXT,
    "ModalitiesInStudy": QUERY_TEXT,
    "SeriesNumber": QUERY_TEXT,
    "AccessionNumber": PN_OR_TEXT,
}


@st.composite
def find_identifiers(draw: st.DrawFn) -> Dataset:
    identifier = Dataset()
    identifier.SpecificCharacterSet = "ISO_IR 192"
    for keyword, values in IDENTIFIER_VALUES.items():
        if draw(st.booleans()):
            set_raw(identifier, keyword, draw(values))
    return identifier


@pytest.mark.django_db
@examples(150)
@given(
    identifier=find_identifiers(),
    level=st.sampled_from(list(Level)),
    insensitive=st.booleans(),
)
def test_a_cfind_identifier_builds_a_query_or_a_query_error(
    tenant_a, identifier, level, insensitive
):
    values, tags = identifier_keys(identifier)
    try:
        query = build_query(level, values, tags, case_insensitive_names=insensitive)
    except QueryError:
        return
    list(find(Study.objects.all(), query))
