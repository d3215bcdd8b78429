"""Firestore collections are declared like tables: every collection the code reads or writes is in
shared/privacy/documents.py COLLECTIONS (with the fields that name a person, or none), so an erasure
cannot miss a collection added later."""

from __future__ import annotations

import ast
from pathlib import Path

from shared.privacy.documents import COLLECTIONS, DocumentKey, erase_documents, find_documents
from shared.privacy.statements import Keys
from shared.privacy.subjects import Identifier
from tests.fakes import FakeDocumentStore

ROOT = Path(__file__).resolve().parents[2]
CALLS = {"get", "set", "list", "delete"}


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level NAME = "text" assignments (collection names are often such constants)."""
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Constant):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                    found[target.id] = node.value.value
    return found


def used_collections() -> dict[str, str]:
    """Collection name -> a file using it: the first argument of documents.get/set/list/delete calls
    (a literal, or a module constant of this module or of another one, `module.NAME`)."""
    trees = {
        p: ast.parse(p.read_text(), str(p))
        for top in ("shared", "functions", "cli")
        for p in (ROOT / top).rglob("*.py")
    }
    constants: dict[str, str] = {}
    for tree in trees.values():
        constants |= _string_constants(tree)
    used: dict[str, str] = {}
    for path, tree in trees.items():
        local = constants | _string_constants(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args):
                continue
            receiver = ast.unparse(node.func.value)
            if node.func.attr not in CALLS or "documents" not in receiver:
                continue
            first = node.args[0]
            name = (
                first.value
                if isinstance(first, ast.Constant)
                else local.get(first.id)
                if isinstance(first, ast.Name)
                else local.get(first.attr)
                if isinstance(first, ast.Attribute)
                else None
            )
            if isinstance(name, str):
                used.setdefault(name, str(path.relative_to(ROOT)))
    return used


def test_every_collection_the_code_uses_is_declared() -> None:
    used = used_collections()
    assert {"segments", "runs", "discoveries"} <= set(used), used  # the scan sees constants and literals
    undeclared = {name: path for name, path in used.items() if name not in COLLECTIONS}
    assert undeclared == {}, "declare these in shared/privacy/documents.py COLLECTIONS (docs/privacy.md)"


def test_documents_naming_the_subject_are_found_per_site_and_deleted() -> None:
    store = FakeDocumentStore()
    store.set("notes", "a", {"phone": "+821012345678", "site_id": "shop"})
    store.set("notes", "b", {"phone": "+821012345678", "site_id": "other-shop"})
    store.set("notes", "c", {"phone": "+821099999999", "site_id": "shop"})
    store.set("tickets", "t", {"customer": "c_1"})
    collections = {"notes": (DocumentKey("phone", "phone"),), "tickets": (DocumentKey("customer", "customer"),)}
    keys = Keys("shop", frozenset({Identifier("phone", "+821012345678")}), frozenset({"c_1"}))
    assert set(find_documents(store, keys, collections)) == {"notes", "tickets"}
    assert erase_documents(store, keys, collections) == {"notes": 1, "tickets": 1}
    assert [doc_id for doc_id, _ in store.list("notes")] == ["b", "c"] and store.list("tickets") == []
    assert erase_documents(store, keys, collections) == {}
