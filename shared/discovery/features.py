"""Discovery features: the catalogue, the config document, and the profiles → matrix transform.

Clustering on raw profile columns fails in known ways: revenue spans five orders of magnitude, so
one big spender becomes a cluster of one; a category coded 0..n invents an order; a NULL becomes
a value. So each feature has a kind that fixes its transform: `log` (money and counts: log1p),
`linear` (age), `flag` (booleans: 0/1, NULL is false) and `category` (one-hot of the most common
values, the rest as "(other)", NULL as "(missing)"). A numeric feature with missing values gets
the median and a `<code>:missing` indicator column, so "unknown age" stays visible instead of
being silently mistaken for a median age. Then every column is standard-scaled, and a category's
columns are divided by √(number of levels) so a category weighs as much as one numeric feature.

The marketer chooses features by code (the segmentlet codes where one exists) in Firestore
`discoveries/config`; every field is validated with a field path, like segments.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MISSING = "(missing)"
OTHER = "(other)"


@dataclass(frozen=True)
class Feature:
    """One clustering feature: a column of sql/discovery/features.sql and how it is transformed."""

    code: str
    kind: str  # log | linear | flag | category
    name_en: str
    name_ko: str
    # Label words for a cluster well above / below the population (numeric and flag kinds);
    # a category's label is its value, with `prefix` (e.g. "via " for an inflow medium).
    high: tuple[str, str] = ("", "")  # (en, ko)
    low: tuple[str, str] = ("", "")
    prefix: tuple[str, str] = ("", "")


FEATURES: tuple[Feature, ...] = (
    Feature(
        "recency_days",
        "log",
        "Days since last visit",
        "마지막 방문 후 일수",
        ("lapsed", "휴면"),
        ("recent", "최근 방문"),
    ),
    Feature(
        "odr",
        "log",
        "Orders in the period",
        "기간 주문 수",
        ("frequent buyers", "잦은 구매"),
        ("few orders", "구매 적음"),
    ),
    Feature(
        "rvn", "log", "Revenue in the period", "기간 구매액", ("high spend", "고액 구매"), ("low spend", "소액 구매")
    ),
    Feature(
        "avg_rvn",
        "log",
        "Average order value",
        "평균 객단가",
        ("big baskets", "높은 객단가"),
        ("small baskets", "낮은 객단가"),
    ),
    Feature(
        "odr_ltv",
        "log",
        "Lifetime orders",
        "누적 주문 수",
        ("many lifetime orders", "누적 구매 많음"),
        ("few lifetime orders", "누적 구매 적음"),
    ),
    Feature(
        "rvn_ltv",
        "log",
        "Lifetime revenue",
        "누적 구매액",
        ("high lifetime value", "고가치"),
        ("low lifetime value", "저가치"),
    ),
    Feature(
        "avg_rvn_ltv",
        "log",
        "Lifetime average order value",
        "누적 평균 객단가",
        ("big lifetime baskets", "누적 객단가 높음"),
        ("small lifetime baskets", "누적 객단가 낮음"),
    ),
    Feature(
        "sessions",
        "log",
        "Visits in the period",
        "기간 방문 수",
        ("frequent visitors", "잦은 방문"),
        ("rare visitors", "드문 방문"),
    ),
    Feature(
        "page_views",
        "log",
        "Page views in the period",
        "기간 페이지뷰",
        ("heavy browsing", "많이 탐색"),
        ("light browsing", "적게 탐색"),
    ),
    Feature(
        "tenure_days",
        "log",
        "Days since first visit",
        "첫 방문 후 일수",
        ("long-time", "오랜 고객"),
        ("newcomers", "신규"),
    ),
    Feature(
        "products_viewed",
        "log",
        "Distinct products viewed",
        "조회 상품 수",
        ("wide browsing", "여러 상품 조회"),
        ("narrow browsing", "조회 상품 적음"),
    ),
    Feature(
        "keywords",
        "log",
        "Distinct site searches",
        "사이트 검색어 수",
        ("searchers", "검색 많음"),
        ("non-searchers", "검색 적음"),
    ),
    Feature("age", "linear", "Age", "연령", ("older", "고연령"), ("younger", "저연령")),
    Feature("is_member", "flag", "Member", "회원", ("members", "회원"), ("guests", "비회원")),
    Feature(
        "has_email", "flag", "Email known", "이메일 보유", ("email known", "이메일 있음"), ("no email", "이메일 없음")
    ),
    Feature(
        "has_phone",
        "flag",
        "Phone known",
        "전화번호 보유",
        ("phone known", "전화번호 있음"),
        ("no phone", "전화번호 없음"),
    ),
    Feature("sex", "category", "Sex", "성별"),
    Feature("device", "category", "Device", "기기"),
    Feature("os", "category", "Operating system", "운영체제"),
    Feature("br", "category", "Browser", "브라우저"),
    Feature("region", "category", "Region", "지역"),
    Feature("ref_media_fst", "category", "First inflow medium", "최초 유입 매체", prefix=("first via ", "최초 유입 ")),
    Feature("ref_media_lst", "category", "Last inflow medium", "최종 유입 매체", prefix=("via ", "유입 ")),
)
BY_CODE: dict[str, Feature] = {f.code: f for f in FEATURES}
DEFAULT_FEATURES: tuple[str, ...] = (
    "recency_days",
    "odr",
    "rvn",
    "avg_rvn",
    "sessions",
    "page_views",
    "age",
    "sex",
    "device",
    "region",
    "ref_media_lst",
)
SEX_WORDS = {"M": ("male", "남성"), "F": ("female", "여성"), "U": ("sex unknown", "성별 미상")}


class ConfigError(ValueError):
    """The config document is invalid; `errors` lists every problem, field path first."""

    def __init__(self, errors: Sequence[str]):
        super().__init__("; ".join(errors))
        self.errors = list(errors)


class DiscoveryError(ValueError):
    """The data cannot support the requested clustering (too few customers, constant features…)."""


@dataclass(frozen=True)
class DiscoveryConfig:
    """Firestore `discoveries/config`; every field optional. docs/discovery.md explains each."""

    features: tuple[str, ...] = DEFAULT_FEATURES
    explicit_features: bool = False  # the marketer chose them: a useless one is an error, not dropped
    k: int | None = None  # None: automatic over [k_min, k_max]
    k_min: int = 2
    k_max: int = 8
    site_id: str | None = None
    active_days: int | None = 365  # customers seen in the last N days of their profile; None: all
    sample_size: int = 5_000  # silhouette sample: its distance matrix is sample² floats
    train_size: int = 100_000  # candidates of automatic k are fitted (KMeans) on a sample of this size
    seed: int = 42
    max_categories: int = 8
    minibatch_threshold: int = 50_000  # above: MiniBatchKMeans
    bigquery_ml_threshold: int = 5_000_000  # above, on BigQuery: BigQuery ML
    min_cluster_size: int = 5  # at least this many customers per requested cluster
    enabled: bool = True


# Whole-number fields: name → (lowest, highest) allowed.
_INTS: dict[str, tuple[int, int]] = {
    "k": (2, 50),
    "k_min": (2, 50),
    "k_max": (2, 50),
    "active_days": (1, 36500),
    "sample_size": (500, 20_000),
    "train_size": (1_000, 10_000_000),
    "seed": (0, 2**31 - 1),
    "max_categories": (1, 50),
    "minibatch_threshold": (100, 100_000_000),
    "bigquery_ml_threshold": (1_000, 10_000_000_000),
    "min_cluster_size": (1, 1_000_000),
}
# Fields the job writes back on the config document: never an input.
WRITTEN_BACK = ("status", "latest_run", "updated_at")


def parse_config(doc: Mapping[str, Any] | None) -> DiscoveryConfig:
    """The config from its document (None: all defaults); raise ConfigError listing every problem."""
    doc = dict(doc or {})
    for name in WRITTEN_BACK:
        doc.pop(name, None)
    errors: list[str] = []
    known = set(_INTS) | {"features", "site_id", "enabled"}
    for name in sorted(set(doc) - known):
        errors.append(f"{name}: unknown field (known: {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for name, (low, high) in _INTS.items():
        if name not in doc or (name in ("k", "active_days") and doc[name] in (None, "auto", "all")):
            if name in doc:
                values[name] = None
            continue
        value = doc[name]
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append(f"{name}: expected a whole number, got {value!r}")
        elif not low <= value <= high:
            errors.append(f"{name}: {value} is outside {low}..{high}")
        else:
            values[name] = value
    if "features" in doc:
        features = doc["features"]
        if not isinstance(features, list) or not features:
            errors.append("features: expected a non-empty list of feature codes")
        else:
            seen: set[str] = set()
            for i, code in enumerate(features):
                if not isinstance(code, str) or code not in BY_CODE:
                    errors.append(
                        f"features[{i}]: unknown feature {code!r} (known: {', '.join(f.code for f in FEATURES)})"
                    )
                elif code in seen:
                    errors.append(f"features[{i}]: {code!r} is listed twice")
                seen.add(str(code))
            values["features"] = tuple(features)
            values["explicit_features"] = True
    if "site_id" in doc and doc["site_id"] is not None:
        site = doc["site_id"]
        if not isinstance(site, str) or not 0 < len(site) <= 200:
            errors.append("site_id: expected a site id (text up to 200 characters)")
        else:
            values["site_id"] = site
    if "enabled" in doc and not isinstance(doc["enabled"], bool):
        errors.append(f"enabled: expected true or false, got {doc['enabled']!r}")
    elif "enabled" in doc:
        values["enabled"] = doc["enabled"]
    k_min = values.get("k_min", DiscoveryConfig.k_min)
    k_max = values.get("k_max", DiscoveryConfig.k_max)
    if isinstance(k_min, int) and isinstance(k_max, int) and k_min > k_max:
        errors.append(f"k_min: {k_min} is above k_max {k_max}")
    if errors:
        raise ConfigError(errors)
    return DiscoveryConfig(**values)


@dataclass
class Transform:
    """How the matrix was made from the profiles: enough to redo it, invert it and explain it."""

    columns: list[str] = field(default_factory=list)  # matrix column names
    sources: list[str] = field(default_factory=list)  # feature code of each column
    mean: list[float] = field(default_factory=list)  # of each column before scaling
    std: list[float] = field(default_factory=list)
    weight: list[float] = field(default_factory=list)  # applied after scaling (categories: 1/√levels)
    medians: dict[str, float] = field(default_factory=dict)  # imputed for missing numeric values
    levels: dict[str, list[str]] = field(default_factory=dict)  # category levels, in column order
    dropped: list[dict[str, str]] = field(default_factory=list)  # default features with no signal

    def scale(self, raw: np.ndarray) -> np.ndarray:
        """Transformed (unscaled) values → the clustering space."""
        mean = np.asarray(self.mean)
        std = np.asarray(self.std)
        return np.asarray((raw - mean) / std * np.asarray(self.weight))

    def unscale(self, scaled: np.ndarray) -> np.ndarray:
        """The clustering space → transformed (unscaled) values: log1p units for log features."""
        return np.asarray(scaled / np.asarray(self.weight) * np.asarray(self.std) + np.asarray(self.mean))

    def zscores(self, scaled: np.ndarray) -> np.ndarray:
        """Standard scores against the whole population (the weight taken out)."""
        return np.asarray(scaled / np.asarray(self.weight))

    def document(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "sources": self.sources,
            "mean": self.mean,
            "std": self.std,
            "weight": self.weight,
            "medians": self.medians,
            "levels": self.levels,
            "dropped": self.dropped,
        }


def _numeric(column: pa.ChunkedArray) -> np.ndarray:
    """A numeric Arrow column as float64 with NaN for NULL (no Python objects)."""
    array = pc.cast(column, pa.float64())
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.float64)


def _useless(code: str, problem: str, config: DiscoveryConfig, transform: Transform) -> None:
    if config.explicit_features:
        raise DiscoveryError(f"feature {code}: {problem}; remove it from discoveries/config features")
    transform.dropped.append({"feature": code, "reason": problem})


def build_matrix(table: pa.Table, config: DiscoveryConfig) -> tuple[np.ndarray, Transform]:
    """The float32 clustering matrix (customers × columns) of the configured features, and its transform.

    A feature with no signal (all values missing, or one value for everyone) is an error when the
    marketer chose it and is dropped (and reported) when it came from the defaults.
    """
    n = table.num_rows
    transform = Transform()
    blocks: list[np.ndarray] = []
    for code in config.features:
        feature = BY_CODE[code]
        column = table.column(code)
        if feature.kind == "category":
            values = pc.fill_null(pc.cast(column, pa.string()), MISSING)
            counts = pc.value_counts(values).to_pylist()
            counts.sort(key=lambda item: (-item["counts"], item["values"]))
            if len(counts) <= 1:
                only = counts[0]["values"] if counts else MISSING
                problem = "every value is missing" if only == MISSING else f"every customer has the same value ({only})"
                _useless(code, problem, config, transform)
                continue
            top = [c["values"] for c in counts if c["values"] != MISSING][: config.max_categories]
            present = {c["values"] for c in counts}
            levels = top + ([OTHER] if present - set(top) - {MISSING} else [])
            levels += [MISSING] if MISSING in present else []
            index = pc.index_in(values, value_set=pa.array(top, pa.string())).to_numpy(zero_copy_only=False)
            codes = np.where(np.isnan(index.astype(np.float64)), -1, index).astype(np.int64)
            if OTHER in levels:
                codes[(codes < 0)] = levels.index(OTHER)
            if MISSING in levels:
                missing_mask = np.asarray(pc.equal(values, MISSING).to_numpy(zero_copy_only=False), dtype=bool)
                codes[missing_mask] = levels.index(MISSING)
            block = np.zeros((n, len(levels)), dtype=np.float32)
            block[np.arange(n), codes] = 1.0
            blocks.append(block)
            transform.levels[code] = levels
            transform.columns += [f"{code}={level}" for level in levels]
            transform.sources += [code] * len(levels)
            transform.weight += [1.0 / math.sqrt(len(levels))] * len(levels)
            continue
        raw = _numeric(column)
        if feature.kind == "flag":
            raw = np.nan_to_num(raw, nan=0.0)
        missing = np.isnan(raw)
        if missing.all():
            _useless(code, "every value is missing", config, transform)
            continue
        if feature.kind == "log":
            raw = np.log1p(np.clip(raw, 0.0, None))
        observed = raw[~missing]
        if np.ptp(observed) == 0.0:
            same = original_units(code, float(observed[0]))  # in the feature's unit, not log1p's
            _useless(code, f"every customer with a value has the same one ({same:g})", config, transform)
            continue
        columns = [raw]
        names = [code]
        if missing.any():
            median = float(np.median(observed))
            transform.medians[code] = median
            columns = [np.where(missing, median, raw), missing.astype(np.float64)]
            names = [code, f"{code}:missing"]
        for values_, name in zip(columns, names, strict=True):
            blocks.append(values_.astype(np.float32).reshape(n, 1))
            transform.columns.append(name)
            transform.sources.append(code)
            transform.weight.append(1.0)
    if not blocks:
        reasons = "; ".join(f"{d['feature']}: {d['reason']}" for d in transform.dropped)
        raise DiscoveryError(f"no usable feature: {reasons}")
    matrix = np.hstack(blocks) if len(blocks) > 1 else blocks[0]
    mean = matrix.mean(axis=0, dtype=np.float64)
    std = matrix.std(axis=0, dtype=np.float64)
    std[std == 0.0] = 1.0  # only a one-hot level present everywhere; cannot happen after the checks
    transform.mean = [float(v) for v in mean]
    transform.std = [float(v) for v in std]
    # In place, column by column: no second full-size matrix.
    for j in range(matrix.shape[1]):
        matrix[:, j] -= np.float32(mean[j])
        matrix[:, j] *= np.float32(transform.weight[j] / std[j])
    return matrix, transform


def original_units(code: str, value: float) -> float:
    """A transformed value (a centroid coordinate after unscale) back in the feature's own unit."""
    kind = BY_CODE[code].kind
    return float(np.expm1(value)) if kind == "log" else float(value)
