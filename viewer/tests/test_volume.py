import threading

import numpy as np
import pydicom
import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from conftest import CT_SERIES, SHARED_DATA
from pacs import spool
from pacs.ingest import do_ingest_spooled_file
from pacs.models import PixelStatus, Series
from viewer import volume as volume_module
from viewer.tests.volumes import instance_rows, plan, synthetic_volume
from viewer.volume import (
    VolumeCache,
    VolumeError,
    load_volume,
    plan_volume,
    series_volume,
)

MR_SAGITTAL = SHARED_DATA / "dcm_qa_decubitus" / "HFS" / "3_t1_fl2d_sag"


def refusal(rows) -> str:
    with pytest.raises(VolumeError) as caught:
        plan(rows)
    assert caught.value.message  # a sentence for the user
    return caught.value.reason


# --- Geometry of real series -------------------------------------------------


@pytest.mark.django_db
def test_it_describes_the_real_ct_series_as_a_volume(ingest):
    files = sorted(CT_SERIES.glob("*.dcm"))
    for path in files:
        ingest(path)

    geometry = plan_volume(Series.objects.get())

    assert geometry.shape == (64, 512, 512)
    assert geometry.spacing[0] == pytest.approx(3.0)
    np.testing.assert_allclose(geometry.axes[0], [0, 0, 1])
    assert geometry.origin[2] == pytest.approx(223.91)
    assert geometry.dtype == np.int16
    lowest = pydicom.dcmread(CT_SERIES / "1-088.dcm")
    assert geometry.spacing[1:] == pytest.approx(
        [float(v) for v in lowest.PixelSpacing]
    )


@pytest.mark.django_db
def test_it_loads_hounsfield_units_in_slice_order(ingest):
    for name in ("1-040.dcm", "1-042.dcm", "1-041.dcm"):
        ingest(CT_SERIES / name)

    volume = load_volume(plan_volume(Series.objects.get()))

    # z decreases with the file number: 1-042 is the lowest slice.
    for k, name in enumerate(("1-042.dcm", "1-041.dcm", "1-040.dcm")):
        ds = pydicom.dcmread(CT_SERIES / name)
        expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        np.testing.assert_array_equal(volume.voxels[k], expected)


def hounsfield(ds: pydicom.Dataset) -> np.ndarray:
    return ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


@pytest.mark.django_db
def test_it_reads_native_slices_without_parsing_them_with_pydicom(ingest, monkeypatch):
    for name in ("1-040.dcm", "1-041.dcm"):
        ingest(CT_SERIES / name)

    def no_pydicom(instance):
        raise AssertionError("parsed with pydicom")

    monkeypatch.setattr(volume_module, "load_dataset", no_pydicom)
    volume = load_volume(plan_volume(Series.objects.get()))

    expected = hounsfield(pydicom.dcmread(CT_SERIES / "1-041.dcm"))
    np.testing.assert_array_equal(volume.voxels[0], expected)


@pytest.mark.django_db
@pytest.mark.parametrize("trailing_padding", [False, True])
def test_bits_above_bits_stored_are_cleared_however_the_slice_is_read(
    ingest, tmp_path, trailing_padding
):
    written = []
    for name in ("1-040.dcm", "1-041.dcm"):
        ds = pydicom.dcmread(CT_SERIES / name)
        stored = ds.pixel_array.copy()
        # Garbage in the 4 unused bits (Bits Stored 12 of 16), which readers
        # must ignore (PS3.5 8.1.1).
        ds.PixelData = (stored | 0xF000).astype("<u2").tobytes()
        if trailing_padding:  # an element after Pixel Data: read by pydicom
            ds.DataSetTrailingPadding = b"\0\0"
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
        path = tmp_path / name
        ds.save_as(path, enforce_file_format=True)
        ingest(path)
        written.append(stored * float(ds.RescaleSlope) + float(ds.RescaleIntercept))

    volume = load_volume(plan_volume(Series.objects.get()))

    # 1-041 is the lower slice: first along the normal.
    np.testing.assert_array_equal(volume.voxels[0], written[1])
    np.testing.assert_array_equal(volume.voxels[1], written[0])


@pytest.mark.django_db
def test_it_stacks_a_sagittal_mr_along_its_normal(ingest):
    for path in sorted(MR_SAGITTAL.glob("*.dcm"))[:6]:
        ingest(path)

    geometry = plan_volume(Series.objects.get())

    # Row (0,1,0) x column (0,0,-1) = (-1,0,0): slices run right to left... in -x.
    np.testing.assert_allclose(geometry.axes[0], [-1, 0, 0], atol=1e-3)
    assert geometry.spacing[0] == pytest.approx(4.8, abs=0.01)
    assert geometry.shape == (6, 256, 256)


def test_it_maps_indices_to_patient_positions_and_back():
    rows = instance_rows(4, spacing=2.5)
    geometry = plan(rows)

    point = geometry.index_to_patient([3, 2, 1])

    np.testing.assert_allclose(point, [0.5, 1.0, 7.5])
    np.testing.assert_allclose(geometry.patient_to_index(point), [3, 2, 1])


def test_it_sorts_slices_given_in_any_order():
    rows = instance_rows(5)
    geometry = plan(list(reversed(rows)))

    assert geometry.instance_ids == (1, 2, 3, 4, 5)


# --- Refusals ------------------------------------------------------------------


def test_it_refuses_a_single_slice():
    assert refusal(instance_rows(1)) == "single_slice"


def test_it_refuses_mixed_orientations():
    rows = instance_rows(5)
    rows[2].image_orientation_patient = [1.0, 0.0, 0.0, 0.0, 0.0, -1.0]

    assert refusal(rows) == "mixed_orientations"


def test_it_refuses_a_gantry_tilt():
    rows = instance_rows(5)
    for index, row in enumerate(rows):
        # 10 degrees: each slice 2 mm up is shifted 0.35 mm along y.
        row.image_position_patient = [0.0, index * 0.35, index * 2.0]

    assert refusal(rows) == "gantry_tilt"


def test_it_accepts_rounding_noise_in_positions():
    rows = instance_rows(5)
    rows[2].image_position_patient = [0.001, -0.002, 4.003]

    assert plan(rows).spacing[0] == pytest.approx(2.0)


def test_it_refuses_missing_slices():
    rows = instance_rows(6)
    del rows[3]

    assert refusal(rows) == "missing_slices"


def test_it_refuses_uneven_spacing():
    rows = instance_rows(6)
    for index, row in enumerate(rows):
        row.image_position_patient = [0.0, 0.0, index * 2.0 + (0.4 if index % 2 else 0)]

    assert refusal(rows) == "uneven_spacing"


def test_it_refuses_two_images_at_one_position():
    rows = instance_rows(5)
    rows[3].image_position_patient = rows[2].image_position_patient

    assert refusal(rows) == "duplicate_positions"


def test_it_refuses_images_of_different_sizes():
    rows = instance_rows(5)
    rows[1].columns = 32

    assert refusal(rows) == "differing_sizes"


def test_it_refuses_different_pixel_spacings():
    rows = instance_rows(5)
    rows[4].metadata = {**rows[4].metadata, "00280030": {"vr": "DS", "Value": [1, 1]}}

    assert refusal(rows) == "differing_spacing"


def test_it_refuses_images_without_geometry():
    rows = instance_rows(5)
    rows[0].image_position_patient = None

    assert refusal(rows) == "no_geometry"


def test_it_refuses_multi_frame_and_unreadable_images():
    rows = instance_rows(3)
    rows[1].number_of_frames = 10
    assert refusal(rows) == "multi_frame"

    rows = instance_rows(3)
    rows[1].pixel_status = PixelStatus.TRUNCATED
    assert refusal(rows) == "unreadable"


def test_it_keeps_float_values_when_rescale_is_fractional():
    rows = instance_rows(3)
    for row in rows:
        row.metadata["00281053"] = {"vr": "DS", "Value": [0.5]}

    assert plan(rows).dtype == np.float32


# --- Cache ---------------------------------------------------------------------


def loader_counting(calls: list[str]):
    def load(geometry):
        calls.append(geometry.series_instance_uid)
        return synthetic_volume(np.zeros(geometry.shape, dtype=geometry.dtype))

    return load


def test_the_cache_loads_a_series_once():
    geometry = plan(instance_rows(4))
    cache, calls = VolumeCache(10 * 2**20), []

    first = cache.get(("a", "1.2.3"), geometry, loader_counting(calls))
    second = cache.get(("a", "1.2.3"), geometry, loader_counting(calls))

    assert first is second and len(calls) == 1


def test_the_cache_evicts_the_least_recently_used_volume_beyond_its_bound():
    geometry = plan(instance_rows(4))  # 4 x 16 x 16 int16 + pyramid
    cache = VolumeCache(geometry.cache_bytes * 2)
    load = loader_counting([])

    cache.get(("a", "1"), geometry, load)
    cache.get(("a", "2"), geometry, load)
    cache.get(("a", "1"), geometry, load)  # 1 is now the most recent
    cache.get(("a", "3"), geometry, load)

    assert cache.keys() == [("a", "1"), ("a", "3")]
    assert cache.total_bytes <= cache.max_bytes


def test_the_cache_refuses_a_volume_larger_than_its_bound():
    geometry = plan(instance_rows(4))
    cache = VolumeCache(geometry.cache_bytes - 1)

    with pytest.raises(VolumeError) as caught:
        cache.get(("a", "1"), geometry, loader_counting([]))
    assert caught.value.reason == "too_large"


def test_the_cache_reloads_when_the_series_gained_slices():
    cache, calls = VolumeCache(10 * 2**20), []
    cache.get(("a", "1"), plan(instance_rows(4)), loader_counting(calls))

    volume = cache.get(("a", "1"), plan(instance_rows(5)), loader_counting(calls))

    assert len(calls) == 2 and volume.voxels.shape[0] == 5


def test_the_cache_loads_once_for_parallel_viewers():
    geometry = plan(instance_rows(4))
    cache, calls = VolumeCache(10 * 2**20), []
    started = threading.Barrier(4)

    def view() -> None:
        started.wait()
        cache.get(("a", "1"), geometry, loader_counting(calls))

    threads = [threading.Thread(target=view) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(calls) == 1


@pytest.mark.django_db
def test_the_cache_keeps_tenants_apart_for_the_same_series_uid(
    ingest, tenant_a, tenant_b, storage_dirs
):
    names = ("1-040.dcm", "1-041.dcm")
    cache = VolumeCache(512 * 2**20)
    with tenant_context(tenant_a):
        for name in names:
            ingest(CT_SERIES / name)
        volume_a = series_volume(Series.objects.get(), cache)

    with tenant_context(tenant_b):
        for name in names:
            ds = pydicom.dcmread(CT_SERIES / name)
            ds.PixelData = np.zeros((512, 512), dtype=np.uint16).tobytes()
            path = storage_dirs / f"b-{name}"
            ds.save_as(path)
            do_ingest_spooled_file(
                spool.write_durably(tenant_b.schema_name, path.read_bytes()), "MOD"
            )
        volume_b = series_volume(Series.objects.get(), cache)
        schema_b = connection.schema_name

    assert volume_a is not volume_b
    assert volume_b.voxels.max() == -1000 and volume_a.voxels.max() > 0
    assert sorted(key[0] for key in cache.keys()) == sorted(["hospital_a", schema_b])


def test_the_pyramid_is_near_isotropic_and_accounted_for():
    volume = synthetic_volume(np.ones((40, 64, 64), dtype=np.int16), (2.0, 0.5, 0.5))

    voxels, spacing = volume.downsampled(40)

    assert voxels.shape == (40, 16, 16)
    np.testing.assert_allclose(spacing, [2.0, 2.0, 2.0])
    assert volume.geometry.cache_bytes > volume.voxels.nbytes
