"""Two PNG charts of a clustering, so a marketer can see the clusters rather than read a table of numbers.

The discovery demo writes them into its report folder: a 2-D PCA projection of a sample of customers
coloured by cluster (are the clusters real groups or slices of one cloud?) and a heat map of the centroids
(what sets each cluster apart, in z-scores against all customers, since the feature space is standard-scaled).

Figures are built with `matplotlib.figure.Figure` on an Agg canvas, never through pyplot, so nothing is
registered in pyplot's global figure list and nothing outlives the call. Labels may be Korean: a CJK font is
used when one is installed; without one the glyphs render as boxes and matplotlib's warnings about them
are silenced.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from sklearn.decomposition import PCA

DPI = 110
PROJECTION_FILE = "clusters_projection.png"
HEATMAP_FILE = "clusters_heatmap.png"
Z_LIMIT = 3.0  # colour scale of the heat map saturates at ±3 standard deviations
MAX_ANNOTATED_COLUMNS = 30  # beyond this, cell values would be unreadable
MAX_FIGURE_INCHES = 48.0  # keeps a very wide feature set well under Agg's 2**16 pixel limit

# Installed fonts with Hangul (and other CJK) glyphs, in order of preference: Linux, macOS, Windows.
_CJK_FONTS = (
    "Noto Sans CJK KR",
    "Noto Sans KR",
    "NanumGothic",
    "Apple SD Gothic Neo",
    "AppleGothic",
    "Malgun Gothic",
    "Noto Sans CJK JP",
    "Source Han Sans KR",
)

RGB = tuple[float, float, float]


def write_charts(
    folder: Path,
    points: np.ndarray,
    labels: np.ndarray,
    centroids: np.ndarray,
    cluster_ids: Sequence[int],
    cluster_labels: Sequence[str],
    columns: Sequence[str],
    title: str = "Customer clusters",
) -> list[Path]:
    """Write the projection and the centroid heat map into `folder`; return their paths in that order.

    `points` (n, d) is a bounded sample of customers in the scaled feature space and `labels` (n,) the
    stable cluster id of each; `centroids` (k, d) are in the same space, row i being cluster
    `cluster_ids[i]`, described by `cluster_labels[i]`; `columns` (d,) names the features.
    Raises ValueError when the shapes do not agree.
    """
    pts, lab, cen, ids = _validated(points, labels, centroids, cluster_ids, cluster_labels, columns)
    names = [str(label) for label in cluster_labels]
    cols = [str(column) for column in columns]
    colours = _colours(ids)

    folder.mkdir(parents=True, exist_ok=True)
    projection_path = folder / PROJECTION_FILE
    heatmap_path = folder / HEATMAP_FILE
    with _text_rendering():
        _save(_projection_figure(pts, lab, cen, ids, names, cols, colours, title), projection_path)
        _save(_heatmap_figure(cen, ids, names, cols, title), heatmap_path)
    return [projection_path, heatmap_path]


def _validated(
    points: np.ndarray,
    labels: np.ndarray,
    centroids: np.ndarray,
    cluster_ids: Sequence[int],
    cluster_labels: Sequence[str],
    columns: Sequence[str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2:
        raise ValueError(f"points must be a 2-D array (n, d), got shape {pts.shape}")
    n, d = pts.shape
    if n == 0:
        raise ValueError("points is empty: there are no customers to chart")
    if d == 0:
        raise ValueError("points has no feature columns")
    if not np.isfinite(pts).all():
        raise ValueError("points contains NaN or infinite values")

    lab = np.asarray(labels)
    if lab.ndim != 1:
        raise ValueError(f"labels must be a 1-D array (n,), got shape {lab.shape}")
    if lab.shape[0] != n:
        raise ValueError(f"labels has {lab.shape[0]} rows, points has {n}")
    if lab.dtype.kind == "f" and np.isfinite(lab).all() and (lab == np.round(lab)).all():
        lab = lab.astype(np.int64)
    if lab.dtype.kind not in "iu":
        raise ValueError(f"labels must hold integer cluster ids, got dtype {lab.dtype}")

    cen = np.asarray(centroids, dtype=float)
    if cen.ndim != 2:
        raise ValueError(f"centroids must be a 2-D array (k, d), got shape {cen.shape}")
    k = cen.shape[0]
    if k == 0:
        raise ValueError("centroids is empty: there are no clusters to chart")
    if cen.shape[1] != d:
        raise ValueError(f"centroids has {cen.shape[1]} columns, points has {d}")
    if not np.isfinite(cen).all():
        raise ValueError("centroids contains NaN or infinite values")
    if len(cluster_ids) != k:
        raise ValueError(f"cluster_ids has {len(cluster_ids)} entries, centroids has {k} rows")
    if len(cluster_labels) != k:
        raise ValueError(f"cluster_labels has {len(cluster_labels)} entries, centroids has {k} rows")
    if len(columns) != d:
        raise ValueError(f"columns has {len(columns)} names, points has {d} columns")

    ids = [int(i) for i in cluster_ids]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(f"cluster_ids repeats {', '.join(map(str, repeated))}")
    unknown = sorted(set(np.unique(lab).tolist()) - set(ids))
    if unknown:
        raise ValueError(f"labels contain ids not in cluster_ids: {', '.join(map(str, unknown))}")
    return pts, lab, cen, ids


def _colours(ids: list[int]) -> dict[int, RGB]:
    """A colour per cluster id that depends on the id alone where possible, so cluster 5 keeps its colour."""
    for name, size in (("tab10", 10), ("tab20", 20)):
        if len({i % size for i in ids}) == len(ids):
            cmap = matplotlib.colormaps[name]
            return {i: to_rgb(cmap(i % size)) for i in ids}
    # More clusters than a qualitative palette can tell apart: spread them over a continuous one by rank.
    cmap = matplotlib.colormaps["turbo"]
    ordered = sorted(ids)
    return {i: to_rgb(cmap(0.05 + 0.9 * rank / max(1, len(ordered) - 1))) for rank, i in enumerate(ordered)}


def _ink_on(background: RGB) -> str:
    """Black or white, whichever reads better on `background`."""
    r, g, b = background
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.55 else "white"


def _percent(share: float) -> str:
    if 0 < share < 0.5:
        return "<1%"
    return f"{share:.0f}%"


def _project(points: np.ndarray, centroids: np.ndarray, columns: list[str]) -> tuple[np.ndarray, np.ndarray, str, str]:
    """Points and centroids in two dimensions, with the axis labels."""
    if points.shape[1] == 1:
        # One feature: it is the whole picture; the second axis only spreads nothing.
        return (
            np.column_stack([points[:, 0], np.zeros(len(points))]),
            np.column_stack([centroids[:, 0], np.zeros(len(centroids))]),
            f"{columns[0]} (100% of variance)",
            "(single feature: no second axis)",
        )
    # PCA needs two samples for two components; a one-customer sample borrows the centroids.
    basis = points if len(points) >= 2 else np.vstack([points, centroids])
    pca = PCA(n_components=2, random_state=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        pca.fit(basis)
    ratios = [float(r) for r in pca.explained_variance_ratio_]
    axis = [f"PC{i + 1} ({r:.0%} of variance)" if np.isfinite(r) else f"PC{i + 1}" for i, r in enumerate(ratios)]
    return pca.transform(points), pca.transform(centroids), axis[0], axis[1]


def _projection_figure(
    points: np.ndarray,
    labels: np.ndarray,
    centroids: np.ndarray,
    ids: list[int],
    names: list[str],
    columns: list[str],
    colours: dict[int, RGB],
    title: str,
) -> Figure:
    xy, centres, x_label, y_label = _project(points, centroids, columns)
    n = len(points)
    counts = {i: int((labels == i).sum()) for i in ids}
    entries = [f"{i}: {name} ({_percent(100 * counts[i] / n)})" for i, name in zip(ids, names, strict=True)]

    longest = max(len(entry) for entry in entries)
    width = min(MAX_FIGURE_INCHES, 7.5 + 0.075 * longest)
    height = max(6.0, 1.5 + 0.28 * len(ids))
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()

    # One scatter in a shuffled order, so whichever cluster comes last does not hide the others.
    order = np.random.default_rng(0).permutation(n)
    point_colours = np.array([colours[int(i)] for i in labels[order]])
    size = float(np.clip(4000 / n, 3, 30))
    ax.scatter(xy[order, 0], xy[order, 1], c=point_colours, s=size, alpha=0.55, linewidths=0, rasterized=True)

    for (cx, cy), i in zip(centres, ids, strict=True):
        ax.scatter([cx], [cy], s=420, color=colours[i], edgecolors="black", linewidths=1.5, zorder=3)
        ink = _ink_on(colours[i])
        ax.annotate(str(i), (cx, cy), ha="center", va="center", fontsize=9, fontweight="bold", color=ink, zorder=4)

    handles = [
        Line2D([], [], marker="o", linestyle="", markersize=9, markerfacecolor=colours[i], markeredgecolor="black")
        for i in ids
    ]
    fig.legend(handles, entries, loc="outside right upper", title="cluster (share of sample)", fontsize=9)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    if points.shape[1] == 1:
        ax.set_yticks([])  # the zeros of the padding axis carry no information
    ax.set_title(f"{title}: {n:,} customers, projected on two axes")
    ax.grid(True, alpha=0.25)
    return fig


def _heatmap_figure(centroids: np.ndarray, ids: list[int], names: list[str], columns: list[str], title: str) -> Figure:
    k, d = centroids.shape
    rows = [f"{i}: {name}" for i, name in zip(ids, names, strict=True)]
    annotate = d <= MAX_ANNOTATED_COLUMNS

    # Sizes in inches: room for the row labels on the left, rotated column labels below, a cell per value.
    cell_width = 0.62 if annotate else 0.32
    row_label_width = 0.075 * max(len(row) for row in rows)
    column_label_height = 0.065 * max(len(column) for column in columns)
    width = min(MAX_FIGURE_INCHES, max(6.0, 2.2 + row_label_width + cell_width * d))
    height = min(MAX_FIGURE_INCHES, max(3.5, 1.6 + column_label_height + 0.48 * k))
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()

    # Symmetric around 0; at least ±1 so that small differences do not look saturated, at most ±3.
    limit = float(np.clip(np.abs(centroids).max(), 1.0, Z_LIMIT))
    image = ax.imshow(centroids, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
    if annotate:
        for r in range(k):
            for c in range(d):
                value = round(float(centroids[r, c]), 1) + 0.0  # + 0.0 turns -0.0 into 0.0
                ink = "white" if abs(value) > 0.6 * limit else "black"
                ax.text(c, r, f"{value:.1f}", ha="center", va="center", fontsize=8, color=ink)

    ax.set_xticks(range(d), columns, rotation=45, ha="right", rotation_mode="anchor", fontsize=9)
    ax.set_yticks(range(k), rows, fontsize=9)
    ax.tick_params(length=0)
    ax.set_xticks(np.arange(-0.5, d, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, k, 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=1)
    ax.tick_params(which="minor", length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    colour_bar = fig.colorbar(image, ax=ax, shrink=0.9, pad=0.02)
    colour_bar.set_label("z-score vs all customers")
    ax.set_title(f"{title}: what sets each cluster apart")
    return fig


def _save(fig: Figure, path: Path) -> None:
    try:
        fig.savefig(path, dpi=DPI, format="png", facecolor="white")
    finally:
        fig.clear()  # the figure is not in pyplot's registry; clearing drops its artists right away


@contextmanager
def _text_rendering() -> Iterator[None]:
    """Fall back to an installed CJK font for Hangul; without one, silence the missing-glyph warnings."""
    installed = {font.name for font in font_manager.fontManager.ttflist}
    fallbacks = [name for name in _CJK_FONTS if name in installed]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from", category=UserWarning)
        if fallbacks:
            with matplotlib.rc_context({"font.family": ["sans-serif", *fallbacks]}):
                yield
        else:
            yield
