"""Every common transfer syntax decodes for rendering, and stored files stay as received.

The encoded copies are made here from a real CT slice by independent
encoders (GDCM's codecs, pydicom's RLE/JPEG 2000/deflate writers, OpenJPH
for HTJ2K); the
rendered frame of each must equal the uncompressed file's, to the error the
syntax allows.
"""

import io
from pathlib import Path

import gdcm
import imagecodecs
import numpy as np
import pydicom
import pytest
from django.core.files.storage import default_storage
from PIL import Image
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

from conftest import SHARED_DATA
from viewer.rendering import render_png

SOURCE = SHARED_DATA / "pydicom" / "CT_small.dcm"
WINDOW = (40.0, 400.0)

GDCM_SYNTAXES = {
    "1.2.840.10008.1.2.4.57": gdcm.TransferSyntax.JPEGLosslessProcess14,
    "1.2.840.10008.1.2.4.70": gdcm.TransferSyntax.JPEGLosslessProcess14_1,
    "1.2.840.10008.1.2.4.80": gdcm.TransferSyntax.JPEGLSLossless,
    "1.2.840.10008.1.2.4.81": gdcm.TransferSyntax.JPEGLSNearLossless,
    "1.2.840.10008.1.2.4.91": gdcm.TransferSyntax.JPEG2000,
}
PYDICOM_SYNTAXES = (RLELossless, JPEG2000Lossless)
HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
HTJ2K_LOSSY = "1.2.840.10008.1.2.4.203"
HTJ2K_SYNTAXES = (HTJ2K_LOSSLESS, HTJ2K_LOSSY)
NEAR_LOSSLESS_ERROR = 2  # the JPEG-LS NEAR parameter used below


def encode_with_gdcm(target: Path, syntax: str) -> None:
    reader = gdcm.ImageReader()
    reader.SetFileName(str(SOURCE))
    assert reader.Read()
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(GDCM_SYNTAXES[syntax]))
    change.SetInput(reader.GetImage())
    if syntax == "1.2.840.10008.1.2.4.81":
        codec = gdcm.JPEGLSCodec()
        codec.SetLossless(False)
        codec.SetLossyError(NEAR_LOSSLESS_ERROR)
        change.SetUserCodec(codec)
    assert change.Change()
    writer = gdcm.ImageWriter()
    writer.SetFileName(str(target))
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    assert writer.Write()


def encode_with_openjph(target: Path, syntax: str) -> None:
    """HTJ2K (PS3.5 A.4.9) by OpenJPH, through imagecodecs: no other encoder."""
    ds = pydicom.dcmread(SOURCE)
    codestream = imagecodecs.htj2k_encode(
        ds.pixel_array, reversible=syntax != HTJ2K_LOSSY
    )
    ds.PixelData = pydicom.encaps.encapsulate([codestream])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = syntax
    if syntax == HTJ2K_LOSSY:
        ds.LossyImageCompression = "01"
    ds.save_as(target)


def encode(target: Path, syntax: str) -> Path:
    if syntax in GDCM_SYNTAXES:
        encode_with_gdcm(target, syntax)
    elif syntax in HTJ2K_SYNTAXES:
        encode_with_openjph(target, syntax)
    elif syntax in PYDICOM_SYNTAXES:
        ds = pydicom.dcmread(SOURCE)
        ds.compress(syntax)
        ds.save_as(target)
    else:  # a native syntax: re-encode the dataset, pixels unchanged
        ds = pydicom.dcmread(SOURCE)
        ds.file_meta.TransferSyntaxUID = syntax
        ds.save_as(target, enforce_file_format=True)
    assert pydicom.dcmread(target).file_meta.TransferSyntaxUID == syntax
    return target


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)), dtype=np.int16)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "syntax",
    [
        ImplicitVRLittleEndian,
        DeflatedExplicitVRLittleEndian,
        RLELossless,
        JPEG2000Lossless,
        *GDCM_SYNTAXES,
        *HTJ2K_SYNTAXES,
    ],
)
def test_it_renders_each_transfer_syntax_like_the_uncompressed_file(
    ingest, tmp_path, syntax
):
    reference = pixels(render_png(ingest(SOURCE), window=WINDOW))
    encoded = encode(tmp_path / "encoded.dcm", syntax)
    ds = pydicom.dcmread(encoded)
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.save_as(encoded)

    instance = ingest(encoded)
    rendered = pixels(render_png(instance, window=WINDOW))

    assert instance.transfer_syntax_uid == syntax
    difference = int(np.abs(rendered - reference).max())
    if syntax == "1.2.840.10008.1.2.4.81":
        # NEAR=2 HU on a 400 HU window is at most 2 * 255 / 400 grey levels.
        assert difference <= 2
    elif syntax == "1.2.840.10008.1.2.4.91":
        assert difference <= 1  # GDCM's "JPEG 2000" here is reversible
    elif syntax == HTJ2K_LOSSY:
        # The irreversible 9/7 wavelet at full rate: a grey level or two.
        assert difference <= 2
    else:
        assert difference == 0
    with default_storage.open(instance.storage_path, "rb") as stored:
        assert stored.read() == encoded.read_bytes()


@pytest.mark.django_db
def test_it_renders_big_endian_like_little_endian(ingest):
    little = ingest(SHARED_DATA / "pydicom" / "MR_small.dcm")
    big = SHARED_DATA / "pydicom" / "MR_small_bigendian.dcm"
    assert pydicom.dcmread(big).file_meta.TransferSyntaxUID != ExplicitVRLittleEndian

    reference = pixels(render_png(little, window=(600.0, 1200.0)))
    big_instance = little.__class__.objects.get(pk=little.pk)
    big_instance.storage_path = default_storage.save(
        "hospital_a/bigendian.dcm", io.BytesIO(big.read_bytes())
    )

    assert np.array_equal(
        pixels(render_png(big_instance, window=(600.0, 1200.0))), reference
    )
