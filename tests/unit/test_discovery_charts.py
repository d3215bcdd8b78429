"""The discovery charts: two real PNGs from a planted clustering, and clear errors for inputs that do not agree."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path
from typing import Any

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import numpy as np
import pytest

from shared.discovery.charts import HEATMAP_FILE, PROJECTION_FILE, write_charts

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLUMNS = ["rvn", "frequency", "recency_days", "device=mobile", "device=desktop", "age:missing"]


def planted(seed: int = 0, d: int = 6) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """Three well-separated Gaussian blobs with the non-contiguous ids 1, 2 and 5."""
    rng = np.random.default_rng(seed)
    ids = [1, 2, 5]
    centres = rng.normal(0.0, 2.5, size=(3, d))
    sizes = [120, 60, 20]
    blobs = [centre + rng.normal(0.0, 0.4, size=(size, d)) for centre, size in zip(centres, sizes, strict=True)]
    points = np.vstack(blobs)
    labels = np.repeat(ids, sizes)
    centroids = np.vstack([points[labels == i].mean(axis=0) for i in ids])
    return points, labels, centroids, ids


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which the PNG format puts first after the signature."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE
    assert head[12:16] == b"IHDR"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


@pytest.fixture(scope="module")
def charts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path], list[int]]:
    """The planted clustering charted once for the tests that only look at the output (rendering takes ~0.5 s)."""
    points, labels, centroids, ids = planted()
    folder = tmp_path_factory.mktemp("report") / "charts"  # does not exist yet
    figures_before = plt.get_fignums()
    paths = write_charts(
        folder,
        points,
        labels,
        centroids,
        ids,
        ["high spend · frequent · mobile", "lapsed · desktop", "new · age unknown"],
        COLUMNS,
    )
    assert plt.get_fignums() == figures_before  # nothing registered with pyplot
    return folder, paths, ids


def test_writes_both_charts_as_real_pngs(charts: tuple[Path, list[Path], list[int]]) -> None:
    folder, paths, _ = charts
    assert paths == [folder / PROJECTION_FILE, folder / HEATMAP_FILE]
    assert [p.name for p in paths] == ["clusters_projection.png", "clusters_heatmap.png"]
    for path in paths:
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        width, height = png_size(path)
        assert width > 300 and height > 300
        pixels = mpimg.imread(path)
        assert pixels.shape[:2] == (height, width)

    rgb = (mpimg.imread(paths[0])[..., :3] * 255).round().astype(np.uint32)
    distinct = np.unique((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2])
    assert len(distinct) > 5  # not a blank canvas: points in several cluster colours


def test_heatmap_grows_with_the_number_of_columns(tmp_path: Path, charts: tuple[Path, list[Path], list[int]]) -> None:
    _, narrow, ids = charts
    points, labels, centroids, _ = planted(d=24)
    wide = write_charts(tmp_path, points, labels, centroids, ids, ["a", "b", "c"], [f"f{i}" for i in range(24)])
    assert png_size(wide[1])[0] > png_size(narrow[1])[0]


def test_labels_and_points_must_have_the_same_rows(tmp_path: Path) -> None:
    points, labels, centroids, ids = planted()
    with pytest.raises(ValueError, match=r"^labels has 199 rows, points has 200$"):
        write_charts(tmp_path, points, labels[:-1], centroids, ids, ["a", "b", "c"], COLUMNS)
    assert not list(tmp_path.iterdir())


def test_cluster_ids_must_match_the_centroids(tmp_path: Path) -> None:
    points, labels, centroids, ids = planted()
    with pytest.raises(ValueError, match=r"^cluster_ids has 2 entries, centroids has 3 rows$"):
        write_charts(tmp_path, points, labels, centroids, ids[:2], ["a", "b", "c"], COLUMNS)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"points": np.empty((0, 6))}, r"^points is empty"),
        ({"cluster_labels": ["a", "b"]}, r"^cluster_labels has 2 entries, centroids has 3 rows$"),
        ({"columns": COLUMNS[:5]}, r"^columns has 5 names, points has 6 columns$"),
        ({"cluster_ids": [1, 2, 7]}, r"^labels contain ids not in cluster_ids: 5$"),
        ({"cluster_ids": [1, 1, 5]}, r"^cluster_ids repeats 1$"),
    ],
)
def test_other_mismatches_are_named(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    points, labels, centroids, ids = planted()
    arguments: dict[str, Any] = {
        "points": points,
        "labels": labels,
        "centroids": centroids,
        "cluster_ids": ids,
        "cluster_labels": ["a", "b", "c"],
        "columns": COLUMNS,
    }
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        write_charts(tmp_path, **arguments)


def test_a_single_feature_still_charts(tmp_path: Path) -> None:
    points, labels, centroids, ids = planted(d=1)
    paths = write_charts(tmp_path, points, labels, centroids, ids, ["low", "mid", "high"], ["rvn"])
    for path in paths:
        width, height = png_size(path)
        assert width > 300 and height > 300


def test_korean_labels_do_not_crash(tmp_path: Path) -> None:
    points, labels, centroids, ids = planted()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing Hangul glyph must not even surface as a warning
        paths = write_charts(
            tmp_path,
            points,
            labels,
            centroids,
            ids,
            ["고액 구매 · 모바일", "휴면 고객", "신규 · 연령 미상"],
            COLUMNS,
            title="고객 군집",
        )
    assert all(path.read_bytes()[:8] == PNG_SIGNATURE for path in paths)
