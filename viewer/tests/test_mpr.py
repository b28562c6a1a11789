import math

import numpy as np
import pytest

from viewer.mpr import (
    PlaneError,
    PlaneOrientation,
    SlabMode,
    plane_grid,
    render_oblique,
    render_plane,
    standard_grid,
)
from viewer.render3d import Quality, RenderMode, render_volume
from viewer.tests.volumes import synthetic_volume

AIR, BRIGHT = -1000, 2000


def axial_volume_with_a_bright_voxel(k: int = 6, i: int = 10, j: int = 20):
    """Axial stack, 0.5 mm pixels, 2 mm slices; one bright voxel at (k, i, j)."""
    voxels = np.full((12, 32, 40), AIR, dtype=np.int16)
    voxels[k, i, j] = BRIGHT
    volume = synthetic_volume(voxels, (2.0, 0.5, 0.5))
    return volume, volume.geometry.index_to_patient([k, i, j])


def brightest_pixel(image: np.ndarray) -> tuple[int, int]:
    row, column = np.unravel_index(np.argmax(image), image.shape)
    return int(row), int(column)


@pytest.mark.parametrize("orientation", ["axial", "sagittal", "coronal"])
def test_the_bright_voxel_appears_where_the_crosshair_maps_it(orientation):
    volume, point = axial_volume_with_a_bright_voxel()
    grid = standard_grid(volume.geometry, PlaneOrientation(orientation), point)

    image = render_plane(volume, grid)
    row, column, distance = grid.point_to_pixel(point)

    assert distance == pytest.approx(0)
    assert image[round(row), round(column)] == BRIGHT
    assert brightest_pixel(image) == (round(row), round(column))


def test_a_sagittal_plane_has_one_row_per_slice_and_one_column_per_voxel_row():
    volume, point = axial_volume_with_a_bright_voxel()
    grid = standard_grid(volume.geometry, PlaneOrientation.SAGITTAL, point)

    # 12 slices 2 mm apart, 32 rows 0.5 mm apart: nothing invented between.
    assert (grid.row_spacing, grid.column_spacing) == (2.0, 0.5)
    assert (grid.rows, grid.columns) == (12, 32)
    np.testing.assert_allclose(grid.u, [0, 1, 0])
    np.testing.assert_allclose(grid.v, [0, 0, -1])


def test_an_axial_plane_is_the_source_slice_itself():
    rng = np.random.default_rng(3)
    voxels = rng.integers(-1000, 3000, size=(30, 512, 512)).astype(np.int16)
    # Slices closer than the pixels: the axial plane must not be upsampled.
    volume = synthetic_volume(voxels, (0.378, 0.7, 0.7))
    point = volume.geometry.index_to_patient([17, 0, 0])
    grid = standard_grid(volume.geometry, PlaneOrientation.AXIAL, point)

    image = render_plane(volume, grid)

    assert image.shape == (512, 512)
    np.testing.assert_array_equal(image, voxels[17])


def test_a_plane_fitted_to_a_viewport_keeps_its_footprint():
    volume, point = axial_volume_with_a_bright_voxel()
    grid = standard_grid(volume.geometry, PlaneOrientation.AXIAL, point)

    fitted = grid.fitted(20)

    assert (fitted.rows, fitted.columns) == (16, 20)
    assert fitted.columns * fitted.column_spacing == pytest.approx(40 * 0.5)
    assert fitted.rows * fitted.row_spacing == pytest.approx(32 * 0.5)
    # The footprint's corner stays put: the first centre moves half a pixel in.
    corner = grid.pixel_to_point(-0.5, -0.5)
    np.testing.assert_allclose(fitted.pixel_to_point(-0.5, -0.5), corner)
    assert grid.fitted(64) is grid


def test_an_oblique_plane_steps_one_voxel_along_the_axis_it_crosses_fastest():
    volume, point = axial_volume_with_a_bright_voxel()  # 2 mm slices, 0.5 mm pixels
    u = np.array([1.0, 0.0, 1.0]) / math.sqrt(2)
    grid = plane_grid(volume.geometry, u, np.array([0.0, 1.0, 0.0]), point)

    assert grid.column_spacing == pytest.approx(0.5 * math.sqrt(2))
    assert grid.row_spacing == pytest.approx(0.5)


def test_the_head_is_up_and_the_patients_left_on_screen_right_in_a_coronal_plane():
    volume, point = axial_volume_with_a_bright_voxel(k=11, j=39)  # top, far left
    grid = standard_grid(volume.geometry, PlaneOrientation.CORONAL, point)

    row, column = brightest_pixel(render_plane(volume, grid))

    assert row == 0 and column == grid.columns - 1


def test_pixels_and_patient_positions_convert_both_ways():
    volume, point = axial_volume_with_a_bright_voxel()
    grid = standard_grid(volume.geometry, PlaneOrientation.SAGITTAL, point)

    row, column, _ = grid.point_to_pixel(point)

    np.testing.assert_allclose(grid.pixel_to_point(row, column), point)


def test_a_mip_slab_is_the_maximum_of_its_slices():
    rng = np.random.default_rng(4)
    voxels = rng.integers(-1000, 3000, size=(40, 24, 24)).astype(np.int16)
    volume = synthetic_volume(voxels, (1.0, 1.0, 1.0))
    centre = volume.geometry.index_to_patient([20, 0, 0])
    grid = standard_grid(volume.geometry, PlaneOrientation.AXIAL, centre)

    mip = render_plane(volume, grid, thickness=10.0, mode=SlabMode.MIP)
    minip = render_plane(volume, grid, thickness=10.0, mode=SlabMode.MINIP)
    average = render_plane(volume, grid, thickness=10.0, mode=SlabMode.AVERAGE)

    np.testing.assert_array_equal(mip, voxels[15:25].max(axis=0))
    np.testing.assert_array_equal(minip, voxels[15:25].min(axis=0))
    np.testing.assert_allclose(average, voxels[15:25].mean(axis=0), rtol=1e-5)


def test_a_sagittal_mip_slab_is_the_maximum_across_columns():
    rng = np.random.default_rng(5)
    voxels = rng.integers(-1000, 3000, size=(20, 24, 31)).astype(np.int16)
    volume = synthetic_volume(voxels, (1.0, 1.0, 1.0))
    centre = volume.geometry.index_to_patient([0, 0, 15])
    grid = standard_grid(volume.geometry, PlaneOrientation.SAGITTAL, centre)

    mip = render_plane(volume, grid, thickness=7.0, mode=SlabMode.MIP)

    # Sagittal: columns run along +y (rows i), rows down from the head (k reversed).
    np.testing.assert_array_equal(mip, voxels[::-1, :, 12:19].max(axis=2))


def test_a_plane_outside_the_volume_is_background():
    volume, _point = axial_volume_with_a_bright_voxel()
    grid = standard_grid(volume.geometry, PlaneOrientation.AXIAL, [0, 0, 500.0])

    assert np.all(render_plane(volume, grid) == AIR)


def test_an_oblique_plane_through_the_voxel_shows_it_at_the_crosshair():
    volume, point = axial_volume_with_a_bright_voxel()
    u = np.array([1.0, 1.0, 0.0]) / math.sqrt(2)
    grid = plane_grid(volume.geometry, u, np.array([0.0, 0.0, -1.0]), point)

    image = render_plane(volume, grid)
    row, column, _ = grid.point_to_pixel(point)

    # Sampled trilinearly between pixel centres: near the crosshair, blurred.
    found_row, found_column = brightest_pixel(image)
    assert abs(found_row - row) <= 1 and abs(found_column - column) <= 1
    assert image.max() > AIR + (BRIGHT - AIR) / 4


def test_the_oblique_sampler_agrees_with_the_fast_path_on_a_standard_plane():
    rng = np.random.default_rng(6)
    voxels = rng.integers(-100, 100, size=(10, 16, 16)).astype(np.int16)
    volume = synthetic_volume(voxels, (2.0, 0.5, 0.5))
    point = volume.geometry.index_to_patient([5, 8, 8])
    grid = standard_grid(volume.geometry, PlaneOrientation.CORONAL, point)

    np.testing.assert_allclose(
        render_oblique(volume, grid, 0.0, SlabMode.MIP),
        render_plane(volume, grid),
        atol=1e-3,
    )


def test_an_axial_plane_reformats_a_sagittal_acquisition():
    # Slices along -x (sagittal), rows along -z, columns along +y.
    axes = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    voxels = np.full((8, 20, 20), AIR, dtype=np.int16)
    voxels[3, 5, 7] = BRIGHT
    volume = synthetic_volume(voxels, (1.0, 1.0, 1.0), axes=axes)
    point = volume.geometry.index_to_patient([3, 5, 7])
    grid = standard_grid(volume.geometry, PlaneOrientation.AXIAL, point)

    row, column, _ = grid.point_to_pixel(point)

    assert brightest_pixel(render_plane(volume, grid)) == (round(row), round(column))


def test_it_refuses_parallel_oblique_directions():
    volume, point = axial_volume_with_a_bright_voxel()

    with pytest.raises(PlaneError):
        plane_grid(volume.geometry, np.array([1.0, 0, 0]), np.array([2.0, 0, 0]), point)


# --- 3D -----------------------------------------------------------------------


def sphere_volume(centre_mm=(30.0, 16.0, 16.0), radius=5.0, value=1200):
    """A 64 mm x 32 mm x 32 mm box of air with a bone-dense sphere."""
    k, i, j = np.mgrid[0:32, 0:32, 0:64]
    z, y, x = k * 1.0, i * 1.0, j * 1.0
    inside = (x - centre_mm[0]) ** 2 + (y - centre_mm[1]) ** 2 + (
        z - centre_mm[2]
    ) ** 2 <= radius**2
    voxels = np.where(inside, value, AIR).astype(np.int16)
    return synthetic_volume(voxels, (1.0, 1.0, 1.0))


def test_the_mip_shows_the_brightest_value_of_each_ray():
    volume = sphere_volume()

    image = render_volume(volume, 0, 0, RenderMode.MIP, quality=Quality.FULL)

    assert image.max() == pytest.approx(1200, abs=1)
    assert image.min() == pytest.approx(AIR)


@pytest.mark.parametrize(("azimuth", "side"), [(0, "right"), (180, "left")])
def test_the_camera_turns_around_the_patient(azimuth, side):
    # The sphere sits at the patient's left (+x) of the box centre (x = 31.5).
    volume = sphere_volume(centre_mm=(50.0, 16.0, 16.0))

    image = render_volume(volume, azimuth, 0, RenderMode.MIP, quality=Quality.FULL)

    _row, column = brightest_pixel(image)
    assert (column > image.shape[1] / 2) == (side == "right")


def test_the_camera_looks_down_on_the_head_at_high_elevation():
    volume = sphere_volume(centre_mm=(31.5, 16.0, 28.0))  # near the top

    front = render_volume(volume, 0, 0, RenderMode.MIP, quality=Quality.FULL)
    above = render_volume(volume, 0, 90, RenderMode.MIP, quality=Quality.FULL)

    assert brightest_pixel(front)[0] < front.shape[0] / 2  # head is up
    assert abs(brightest_pixel(above)[0] - above.shape[0] / 2) < above.shape[0] / 4


@pytest.mark.parametrize("quality", list(Quality))
def test_the_shaded_rendering_colours_bone_and_leaves_air_black(quality):
    volume = sphere_volume()

    image = render_volume(volume, 30, 20, RenderMode.SHADED, "bone", quality)

    assert image.dtype == np.uint8 and image.shape[2] == 3
    assert image.max() > 100
    assert image[0, 0].tolist() == [0, 0, 0]


def test_soft_tissue_does_not_show_in_the_bone_preset():
    volume = sphere_volume(value=40)

    image = render_volume(volume, 0, 0, RenderMode.SHADED, "bone", Quality.COARSE)

    assert image.max() == 0
    assert render_volume(volume, 0, 0, RenderMode.SHADED, "soft_tissue").max() > 0
