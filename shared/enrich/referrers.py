"""Matomo's community referrer list (search engines, social networks, AI assistants) as lookup tables.

The files in `data/` are copied unchanged from matomo-org/searchengine-and-social-list (CC0-1.0;
`data/README.md` says which commit and how to refresh them). `load_tables` turns them into plain
dicts once; `shared.enrich.inflow` builds them on its first classification and puts its own tables
(Korean portals, webmail, ad servers...) on top.

How Matomo's entries are read:
- search engines (`SearchEngines.yml`): the host exactly, without a leading "www."; "{}" stands
  for a country code, as a subdomain ("{}.search.yahoo.com") or as the top-level domain, alone or
  after com/org/net/co/it/edu ("google.{}" matches google.de and google.co.kr). An entry with a
  path ("google.{}/imgres") counts for its host. Keyword parameters are the plain `params`; the
  regular-expression ones (paths such as "/s/<keyword>") are not used.
- social networks and AI assistants: the host and every subdomain of it (Matomo matches them on
  dot boundaries too). An AI entry with a path ("x.com/i/grok") matches that path prefix only.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote

import yaml

DATA_DIR: Final = Path(__file__).resolve().parent / "data"
SEARCH_FILE, SOCIAL_FILE, AI_FILE = "SearchEngines.yml", "Socials.yml", "AIAssistants.yml"
FILES: Final = (SEARCH_FILE, SOCIAL_FILE, AI_FILE)

# Second-level labels under a country code that Matomo's "{}" also covers ("co.uk", "com.br").
_COMBINED_TLD_LABELS: Final = frozenset({"com", "org", "net", "co", "it", "edu"})
_SLUG_JUNK = re.compile(r"[\W_]+")


@dataclass(frozen=True, slots=True)
class HostRule:
    medium: str
    source: str
    keyword_params: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReferrerTables:
    search_exact: dict[str, HostRule] = field(default_factory=dict)  # host or "{}" pattern
    ai_hosts: dict[str, HostRule] = field(default_factory=dict)  # host and its subdomains
    social_hosts: dict[str, HostRule] = field(default_factory=dict)  # host and its subdomains
    paths: dict[str, tuple[tuple[str, HostRule], ...]] = field(default_factory=dict)  # host -> prefixes

    def lookup(self, host: str, path: str) -> HostRule | None:
        """The rule for a referrer host (lower case) and path: a path entry, an AI assistant (Matomo
        lists chatgpt.com and perplexity.ai as search engines too), an exact search engine (with
        its "{}" variants), then the most specific social network."""
        if rule := self.path_rule(host, path):
            return rule
        bare = host[4:] if host.startswith("www.") else host
        labels = bare.split(".")
        if rule := _walk(self.ai_hosts, labels):
            return rule
        for candidate in country_variants(bare):
            if rule := self.search_exact.get(candidate):
                return rule
        return _walk(self.social_hosts, labels)

    def path_rule(self, host: str, path: str) -> HostRule | None:
        """The rule of an entry with a path ("x.com/i/grok"), which wins over any host rule."""
        if self.paths:
            for prefix, rule in self.paths.get(host[4:] if host.startswith("www.") else host, ()):
                if path.startswith(prefix):
                    return rule
        return None

    def sources(self) -> dict[str, str]:
        """Source name -> medium of every entry (search first, AI last: the later wins)."""
        rules = [*self.search_exact.values(), *self.social_hosts.values(), *self.ai_hosts.values()]
        return {rule.source: rule.medium for rule in rules}


def _walk(table: Mapping[str, HostRule], labels: list[str]) -> HostRule | None:
    for i in range(len(labels) - 1):
        if rule := table.get(".".join(labels[i:])):
            return rule
    return None


def slug(name: str) -> str:
    """A source name in this project's style: "Yahoo!" -> "yahoo", "Google Images" -> "google_images"."""
    text = unicodedata.normalize("NFKC", unquote(name)).replace("+", " plus").lower()
    return _SLUG_JUNK.sub("_", text).strip("_") or "unknown"


def country_variants(host: str) -> Iterator[str]:
    """The host, then the forms Matomo writes with "{}" for a country code: first label, top-level
    domain (alone or combined, "co.kr"), both."""
    yield host
    labels = host.split(".")
    if len(labels) < 2:
        return
    heads = [labels]
    if len(labels) > 2 and len(labels[0]) == 2:
        heads.append(["{}", *labels[1:]])
    for head in heads:
        if head is not labels:
            yield ".".join(head)
        if len(head) > 2 and head[-2] in _COMBINED_TLD_LABELS and len(head[-1]) == 2:
            yield ".".join([*head[:-2], "{}"])
        yield ".".join([*head[:-1], "{}"])


def _host_and_path(url: str) -> tuple[str, str]:
    url = url.strip().lower()
    if url.startswith("android-app//"):  # Matomo's spelling of "android-app://<package>/..."
        url = url[len("android-app//") :]
    host, slash, path = url.partition("/")
    host = host[4:] if host.startswith("www.") else host
    return host, (slash + path) if slash else ""


def parse_search_engines(data: Any, medium: str) -> dict[str, HostRule]:
    rules: dict[str, HostRule] = {}
    for name, configs in _mapping(data, SEARCH_FILE).items():
        source = slug(str(name))
        for config in _list(configs, f"{SEARCH_FILE}: {name}"):
            if not isinstance(config, Mapping) or not isinstance(config.get("urls"), list):
                raise ValueError(f"{SEARCH_FILE}: {name}: each configuration needs a list of urls")
            params = tuple(p for p in config.get("params") or () if isinstance(p, str) and not p.startswith("/"))
            for url in config["urls"]:
                host, _ = _host_and_path(str(url))
                if host:
                    rules.setdefault(host, HostRule(medium, source, params))
    return rules


def parse_sites(
    data: Any, medium: str, filename: str
) -> tuple[dict[str, HostRule], dict[str, list[tuple[str, HostRule]]]]:
    hosts: dict[str, HostRule] = {}
    paths: dict[str, list[tuple[str, HostRule]]] = {}
    for name, urls in _mapping(data, filename).items():
        rule = HostRule(medium, slug(str(name)))
        for url in _list(urls, f"{filename}: {name}"):
            host, path = _host_and_path(str(url))
            if not host:
                continue
            if path.strip("/"):
                paths.setdefault(host, []).append((path, rule))
            else:
                hosts.setdefault(host, rule)
    return hosts, paths


def load_tables(search_medium: str, social_medium: str, ai_medium: str, data_dir: Path = DATA_DIR) -> ReferrerTables:
    """Read and index the three files (about 30 ms). AI assistants win over search engines and
    social networks on the same host, and path entries over their host ("x.com/i/grok")."""
    search = parse_search_engines(_read(data_dir / SEARCH_FILE), search_medium)
    social_hosts, social_paths = parse_sites(_read(data_dir / SOCIAL_FILE), social_medium, SOCIAL_FILE)
    ai_hosts, ai_paths = parse_sites(_read(data_dir / AI_FILE), ai_medium, AI_FILE)
    paths = {host: tuple(ai_paths.get(host, []) + social_paths.get(host, [])) for host in {*ai_paths, *social_paths}}
    return ReferrerTables(search, ai_hosts, social_hosts, paths)


def _read(path: Path) -> Any:
    with path.open(encoding="utf-8") as file:
        return yaml.load(file, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _mapping(data: Any, filename: str) -> Mapping[Any, Any]:
    if not isinstance(data, Mapping) or not data:
        raise ValueError(f"{filename}: expected a mapping of names to entries")
    return data


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: expected a non-empty list")
    return value
