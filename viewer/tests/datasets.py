"""Edge-case images built with pydicom for the display pipeline tests.

Each dataset is written to bytes and read back, so the renderer meets it the
way it meets a stored file: values in the transfer syntax's encoding, VRs as
a reader resolves them.
"""

import io
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, SecondaryCaptureImageStorage

COLOUR_PHOTOMETRICS = ("RGB", "YBR_FULL")


def image(
    stored: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    planar_configuration: int = 0,
    frames: bool = False,
    syntax: UID = ExplicitVRLittleEndian,
    **attributes: object,
) -> Dataset:
    """An image whose Pixel Data holds ``stored`` word for word.

    Parameters
    ----------
    stored : numpy.ndarray
        The stored values, as (rows, columns) or (rows, columns, 3), with a
        leading frame axis when ``frames``. Its dtype gives Bits Allocated
        and Pixel Representation; bits above ``bits_stored`` are written as
        given, so a test can fill them with noise.
    photometric : str
        Photometric Interpretation; RGB and YBR_FULL have three samples.
    bits_stored : int, optional
        Bits Stored; all the allocated bits when None.
    planar_configuration : int
        0 for R1G1B1R2G2B2..., 1 for R1R2...G1G2...B1B2... (PS3.3 C.7.6.3.1.3).
    frames : bool
        Whether the first axis of ``stored`` counts frames.
    syntax : pydicom.uid.UID
        An uncompressed transfer syntax to write with.
    **attributes
        Further attributes by keyword, e.g. ``RescaleSlope=2``.
    """
    colour = photometric in COLOUR_PHOTOMETRICS or photometric.startswith("YBR")
    pixels = stored if frames else stored[np.newaxis]
    bits_allocated = stored.dtype.itemsize * 8

    ds = identified_dataset(syntax)
    ds.PhotometricInterpretation = photometric
    ds.SamplesPerPixel = 3 if colour else 1
    ds.Rows, ds.Columns = pixels.shape[1], pixels.shape[2]
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored or bits_allocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if np.issubdtype(stored.dtype, np.signedinteger) else 0
    if colour:
        ds.PlanarConfiguration = planar_configuration
        if planar_configuration == 1:
            pixels = pixels.transpose(0, 3, 1, 2)
    if frames:
        ds.NumberOfFrames = stored.shape[0]
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)

    byte_order = "<" if syntax.is_little_endian else ">"
    ds.PixelData = pixels.astype(pixels.dtype.newbyteorder(byte_order)).tobytes()
    ds["PixelData"].VR = "OB" if bits_allocated == 8 else "OW"
    return reread(ds)


def identified_dataset(syntax: UID = ExplicitVRLittleEndian) -> Dataset:
    """A Secondary Capture header with fresh UIDs, enough for ingest."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = pydicom.uid.generate_uid()
    ds.SeriesInstanceUID = pydicom.uid.generate_uid()
    ds.PatientID = "EDGE-CASE"
    ds.PatientName = "Edge^Case"
    ds.Modality = "OT"
    return ds


def lut_item(
    descriptor: tuple[int, int, int], data: list[int], **extra: object
) -> Dataset:
    """A Modality or VOI LUT item with LUT Data as US values."""
    item = Dataset()
    item.add_new("LUTDescriptor", "US", list(descriptor))
    item.add_new("LUTData", "US", data)
    for keyword, value in extra.items():
        setattr(item, keyword, value)
    return item


def reread(ds: Dataset) -> Dataset:
    """``ds`` written to bytes in its transfer syntax and read back."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def write(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path
