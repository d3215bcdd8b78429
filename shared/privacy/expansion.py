"""Expansion: from the identifiers a request names to every identifier and customer of the person.

Identity resolution (refined.identities) already joined a person's visitors, member id, e-mails
and phones into one customer, including identities that share only an e-mail or a phone with the
rest; a request is expanded to the whole customer, on each site that knows it. One query for a
whole batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from shared.ports import Warehouse
from shared.privacy.statements import Keys
from shared.privacy.subjects import Identifier, PrivacyRequest
from shared.sql import load_sql

Expansion = dict[str, Keys]  # site -> what to look for there


def expand(
    warehouse: Warehouse, requests: Sequence[PrivacyRequest], sites: Collection[str] = ()
) -> dict[str, Expansion]:
    """Per request id, its keys on each site it may concern.

    A request naming a site concerns that site only; one naming none concerns every site where
    resolution knows one of its identifiers, and, for identifiers resolution has not seen (rows
    not refined yet), every site in `sites` plus every site resolution knows.
    """
    nodes = sorted({i.node for r in requests for i in r.identifiers})
    rows = warehouse.query(load_sql("privacy/expand"), {"nodes": nodes}) if nodes else []
    linked: dict[tuple[str, str], set[tuple[str, Identifier]]] = defaultdict(set)  # (site, node) -> links
    for row in rows:
        linked[(row["site_id"], row["subject_node"])].add(
            (row["customer_id"], Identifier(row["id_type"], row["id_value"]))
        )
    every_site: set[str] | None = None
    result: dict[str, Expansion] = {}
    for request in requests:
        named = {i.node for i in request.identifiers}
        if request.site_id is not None:
            targets = {request.site_id}
        else:
            targets = {site for site, node in linked if node in named}
            if any(not any((site, node) in linked for site in targets) for node in named):
                if every_site is None:
                    every_site = set(sites) | {r["site_id"] for r in warehouse.query(load_sql("privacy/sites"), {})}
                targets |= every_site
        expansion: Expansion = {}
        for site in sorted(targets):
            links = set().union(*(linked.get((site, node), set()) for node in named))
            expansion[site] = Keys(
                site,
                frozenset(request.identifiers) | {identifier for _, identifier in links},
                frozenset(customer for customer, _ in links),
            )
        result[request.request_id] = expansion
    return result


def expansion_document(expansion: Expansion) -> dict[str, Any]:
    """An expansion as a pending request's document keeps it for the retry: a retry must not lose
    identities the first attempt already erased (site -> nodes and customer ids)."""
    return {
        site: {"nodes": sorted(i.node for i in keys.identifiers), "customers": sorted(keys.customers)}
        for site, keys in expansion.items()
    }


def expansion_from_document(document: Mapping[str, Any]) -> Expansion:
    """The inverse of expansion_document; ValueError for a document it did not write."""
    expansion: Expansion = {}
    for site, data in document.items():
        identifiers = set()
        for node in data["nodes"]:
            id_type, _, value = str(node).partition(":")
            if not value:
                raise ValueError(f"not an identity node: {node!r}")
            identifiers.add(Identifier(id_type, value))
        expansion[site] = Keys(site, frozenset(identifiers), frozenset(map(str, data["customers"])))
    return expansion
