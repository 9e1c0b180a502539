"""The catalog: tasks, roles, role groups and data scopes, and which holds which."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar, cast
from uuid import UUID, uuid4

from sqlalchemy import (
    Table,
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session

from jitpam.adapters.sql.models import (
    CatalogEntryRow,
    CatalogLinkRow,
)
from jitpam.adapters.sql.prepared import Prepared
from jitpam.adapters.sql.queries import (
    after_key,
    encode_cursor,
)
from jitpam.domain.catalog import Catalog
from jitpam.domain.names import SEPARATOR, QualifiedName
from jitpam.domain.policy import PolicyType
from jitpam.services.ports import (
    Page,
)

# The catalog_entries kind of each kind of policy target (data scopes: "data_access").
_KIND = {
    PolicyType.TASK: "task",
    PolicyType.ROLE: "role",
    PolicyType.ROLE_GROUP: "role_group",
    PolicyType.DATA_ACCESS: "data_access",
}
_DATA_SCOPE = _KIND[PolicyType.DATA_ACCESS]


_FEW_TASKS = 5_000  # up to this many tasks, a role's tasks are read and sorted


def _qualified(row: CatalogEntryRow) -> str:
    return str(QualifiedName(row.scope, row.name))


_ENTRIES = cast(Table, CatalogEntryRow.__table__)
_ROLE = _ENTRIES.alias("role")
_NAMES = Prepared(
    select(_ENTRIES.c.scope, _ENTRIES.c.name).where(
        _ENTRIES.c.org_id == bindparam("org"),
        _ENTRIES.c.kind == bindparam("kind"),
        _ENTRIES.c.name_key == bindparam("name_key"),
    )
)
_TASK_EXISTS = Prepared(
    select(_ENTRIES.c.id).where(
        _ENTRIES.c.org_id == bindparam("org"),
        _ENTRIES.c.kind == "task",
        _ENTRIES.c.key == bindparam("key"),
    )
)
_ROLES_HOLDING = Prepared(
    select(_ROLE.c.scope, _ROLE.c.name)
    .select_from(_ENTRIES)
    .join(CatalogLinkRow, CatalogLinkRow.child_id == _ENTRIES.c.id)
    .join(_ROLE, _ROLE.c.id == CatalogLinkRow.parent_id)
    .where(
        _ENTRIES.c.org_id == bindparam("org"),
        _ENTRIES.c.kind == "task",
        _ENTRIES.c.key == bindparam("key"),
        _ROLE.c.kind == "role",
    )
)

_ROLE_GROUP = Prepared(
    select(_ENTRIES.c.id).where(
        _ENTRIES.c.org_id == bindparam("org"),
        _ENTRIES.c.kind == "role_group",
        _ENTRIES.c.key == bindparam("key"),
    )
)
# The role group first, then its links by its id (see role_group_roles).
_ROLES_OF_GROUP = Prepared(
    select(_ROLE.c.scope, _ROLE.c.name)
    .select_from(CatalogLinkRow)
    .join(_ROLE, _ROLE.c.id == CatalogLinkRow.child_id)
    .where(CatalogLinkRow.parent_id == bindparam("id"))
)


_T = TypeVar("_T")
_CHUNK = 500  # keys or ids in one IN list, well under every driver's limit on parameters


def _chunks(items: Sequence[_T]) -> Iterator[Sequence[_T]]:
    for at in range(0, len(items), _CHUNK):
        yield items[at : at + _CHUNK]


class SqlCatalog:
    def __init__(self, session: Session) -> None:
        self.s = session

    def store(self, org_id: UUID, catalog: Catalog) -> int:
        """Add or update the catalog's entries and set the links of its roles and role groups;
        returns how many entries were new or described differently plus how many link sets
        changed. Reads what exists in a few statements and writes each table in bulk."""
        kinds: list[tuple[str, QualifiedName, str]] = [
            *(("task", task, desc) for task, desc in catalog.tasks.items()),
            *(("role", role.name, role.description) for role in catalog.roles),
            *(("role_group", group.name, group.description) for group in catalog.role_groups),
            *((_DATA_SCOPE, scope, desc) for scope, desc in catalog.data_scopes.items()),
        ]
        e = CatalogEntryRow
        found: dict[tuple[str, str], tuple[UUID, str]] = {}
        for keys in _chunks(sorted({name.key for _, name, _ in kinds})):
            rows = self.s.execute(
                select(e.id, e.kind, e.key, e.description).where(
                    e.org_id == org_id, e.key.in_(keys)
                )
            )
            for row in rows:
                found[(row.kind, row.key)] = (row.id, row.description)
        existed = {entry_id for entry_id, _ in found.values()}

        changed = 0
        new_rows: dict[UUID, dict[str, object]] = {}
        described: dict[UUID, str] = {}
        for kind, name, description in kinds:
            known = found.get((kind, name.key))
            if known is None:
                entry_id = uuid4()
                new_rows[entry_id] = {
                    "id": entry_id,
                    "org_id": org_id,
                    "kind": kind,
                    "scope": name.scope,
                    "name": name.name,
                    "key": name.key,
                    "name_key": name.name.casefold(),
                    "description": description,
                }
                changed += 1
            elif known[1] != description:
                # Two names that fold to one key (in one catalog) are one entry, described last.
                entry_id = known[0]
                if entry_id in new_rows:
                    new_rows[entry_id]["description"] = description
                else:
                    described[entry_id] = description
                changed += 1
            else:
                continue
            found[(kind, name.key)] = (entry_id, description)

        def id_of(kind: str, name: QualifiedName) -> UUID:
            return found[(kind, name.key)][0]

        wanted: dict[UUID, list[UUID]] = {}
        for role in catalog.roles:
            wanted[id_of("role", role.name)] = [id_of("task", t) for t in role.tasks]
        for group in catalog.role_groups:
            wanted[id_of("role_group", group.name)] = [id_of("role", r) for r in group.roles]
        before: dict[UUID, set[UUID]] = {}
        for parents in _chunks(sorted(p for p in wanted if p in existed)):
            held = self.s.execute(
                select(CatalogLinkRow.parent_id, CatalogLinkRow.child_id).where(
                    CatalogLinkRow.parent_id.in_(parents)
                )
            )
            for parent, child in held:
                before.setdefault(parent, set()).add(child)
        relink = [p for p, children in wanted.items() if before.get(p, set()) != set(children)]
        changed += len(relink)

        if new_rows:
            self.s.execute(insert(CatalogEntryRow), list(new_rows.values()))
        for entry, description in described.items():
            self.s.execute(
                update(CatalogEntryRow)
                .where(CatalogEntryRow.id == entry)
                .values(description=description)
            )
        for parents in _chunks([p for p in relink if p in before]):
            self.s.execute(delete(CatalogLinkRow).where(CatalogLinkRow.parent_id.in_(parents)))
        links = [{"parent_id": p, "child_id": c} for p in relink for c in wanted[p]]
        if links:
            self.s.execute(insert(CatalogLinkRow), links)
        return changed

    def names(self, org_id: UUID, kind: PolicyType, bare_name: str) -> list[QualifiedName]:
        rows = _NAMES.all(
            self.s, org=org_id, kind=_KIND[kind], name_key=bare_name.strip().casefold()
        )
        return [QualifiedName(r.scope, r.name) for r in rows]

    def task_exists(self, org_id: UUID, task: str) -> bool:
        return _TASK_EXISTS.first(self.s, org=org_id, key=task.casefold()) is not None

    def tasks_held(
        self, org_id: UUID, roles: frozenset[str], tasks: Sequence[str]
    ) -> frozenset[str]:
        if not roles or not tasks:
            return frozenset()
        e = CatalogEntryRow

        def ids(kind: str, names: Iterable[str]) -> dict[UUID, str]:
            keys = {n.casefold() for n in names}
            found = self.s.execute(
                select(e.id, e.key).where(e.org_id == org_id, e.kind == kind, e.key.in_(keys))
            )
            return {row.id: row.key for row in found}

        # Entries by their keys, then the links between them by id: joined in one statement,
        # PostgreSQL read every link of a role that holds 100,000 tasks.
        task_ids, role_ids = ids("task", tasks), ids("role", roles)
        if not task_ids or not role_ids:
            return frozenset()
        held = self.s.scalars(
            select(CatalogLinkRow.child_id).where(
                CatalogLinkRow.parent_id.in_(list(role_ids)),
                CatalogLinkRow.child_id.in_(list(task_ids)),
            )
        )
        return frozenset(task_ids[i] for i in held)

    def roles_holding(self, org_id: UUID, task: str) -> frozenset[str]:
        rows = _ROLES_HOLDING.all(self.s, org=org_id, key=task.casefold())
        return frozenset(str(QualifiedName(s, n)) for s, n in rows)

    def role_group_roles(
        self, org_id: UUID, only: Iterable[str] | None = None
    ) -> dict[str, frozenset[str]]:
        if only is not None:  # a user's few: each by its key
            out: dict[str, frozenset[str]] = {}
            for name in only:
                group = _ROLE_GROUP.first(self.s, org=org_id, key=name.casefold())
                rows = _ROLES_OF_GROUP.all(self.s, id=group.id) if group is not None else ()
                if rows:
                    out[name] = frozenset(str(QualifiedName(s, n)) for s, n in rows)
            return out
        # The role groups first, then their links by id: in one join, PostgreSQL judged the
        # links per parent by the average (a role holding 100,000 tasks) and read them all.
        which = select(CatalogEntryRow.id, CatalogEntryRow.scope, CatalogEntryRow.name).where(
            CatalogEntryRow.org_id == org_id, CatalogEntryRow.kind == "role_group"
        )
        groups = {
            gid: str(QualifiedName(scope, name)) for gid, scope, name in self.s.execute(which)
        }
        if not groups:
            return {}
        role = CatalogEntryRow.__table__.alias("role")
        stmt = (
            select(CatalogLinkRow.parent_id, role.c.scope, role.c.name)
            .join(role, role.c.id == CatalogLinkRow.child_id)
            .where(CatalogLinkRow.parent_id.in_(list(groups)))
        )
        found: dict[str, set[str]] = {}
        for parent, rs, rn in self.s.execute(stmt):
            found.setdefault(groups[parent], set()).add(str(QualifiedName(rs, rn)))
        return {k: frozenset(v) for k, v in found.items()}

    def tasks_of_role(self, org_id: UUID, role: str) -> list[str]:
        parent = CatalogEntryRow.__table__.alias("parent")
        stmt = (
            select(CatalogEntryRow)
            .join(CatalogLinkRow, CatalogLinkRow.child_id == CatalogEntryRow.id)
            .join(parent, parent.c.id == CatalogLinkRow.parent_id)
            .where(
                parent.c.org_id == org_id, parent.c.kind == "role", parent.c.key == role.casefold()
            )
        )
        return sorted(_qualified(r) for r in self.s.scalars(stmt))

    def entries(self, org_id: UUID, kind: PolicyType) -> list[QualifiedName]:
        rows = self.s.scalars(
            select(CatalogEntryRow)
            .where(CatalogEntryRow.org_id == org_id, CatalogEntryRow.kind == _KIND[kind])
            .order_by(CatalogEntryRow.key)
        )
        return [QualifiedName(r.scope, r.name) for r in rows]

    @staticmethod
    def _names_page(rows: Sequence[Sequence[str]], limit: int) -> Page[QualifiedName]:
        nxt = encode_cursor(rows[limit - 1][2]) if len(rows) > limit else None
        return Page([QualifiedName(scope, name) for scope, name, _ in rows[:limit]], nxt)

    def page(
        self, org_id: UUID, kind: PolicyType, *, cursor: str | None, limit: int
    ) -> Page[QualifiedName]:
        e = CatalogEntryRow
        # Reads the unique (org_id, kind, key) index in its order, from the cursor on.
        stmt = select(e.scope, e.name, e.key).where(e.org_id == org_id, e.kind == _KIND[kind])
        after = after_key(cursor)
        if after is not None:
            stmt = stmt.where(e.key > after)
        return self._names_page(self.s.execute(stmt.order_by(e.key).limit(limit + 1)).all(), limit)

    def role_tasks_page(
        self, org_id: UUID, role: str, *, cursor: str | None, limit: int
    ) -> Page[QualifiedName]:
        e = CatalogEntryRow
        role_id = self.s.scalar(
            select(e.id).where(e.org_id == org_id, e.kind == "role", e.key == role.casefold())
        )
        if role_id is None:
            return Page([], None)
        after = after_key(cursor)
        # A role holding few tasks: read its links and sort them. A role holding many: read the
        # catalog's tasks in name order and keep the role's, which finds a page after a bounded
        # number of look-ups as long as the role holds a fair share of the tasks.
        linked = select(CatalogLinkRow.child_id).where(CatalogLinkRow.parent_id == role_id)
        few = self.s.scalar(select(func.count()).select_from(linked.limit(_FEW_TASKS).subquery()))
        stmt = select(e.scope, e.name, e.key).where(e.org_id == org_id, e.kind == "task")
        if after is not None:
            stmt = stmt.where(e.key > after)
        if (few or 0) < _FEW_TASKS:
            stmt = stmt.where(e.id.in_(list(self.s.scalars(linked))))
        else:
            stmt = stmt.where(
                exists().where(CatalogLinkRow.parent_id == role_id, CatalogLinkRow.child_id == e.id)
            )
        return self._names_page(self.s.execute(stmt.order_by(e.key).limit(limit + 1)).all(), limit)

    def lookup(self, org_id: UUID, kind: PolicyType, text: str, limit: int) -> list[QualifiedName]:
        e = CatalogEntryRow
        typed = text.strip().casefold()
        by_key = self.s.execute(
            select(e.scope, e.name, e.key)
            .where(e.org_id == org_id, e.kind == _KIND[kind], e.key >= typed)
            .order_by(e.key)
            .limit(limit)
        ).all()
        found = [QualifiedName(s, n) for s, n, k in by_key if k.startswith(typed)]
        if SEPARATOR not in typed and len(found) < limit:
            by_name = self.s.execute(
                select(e.scope, e.name)
                .where(e.name_key >= typed, e.org_id == org_id, e.kind == _KIND[kind])
                .order_by(e.name_key)
                .limit(limit)
            ).all()
            seen = set(found)
            for s_, n in by_name:
                q = QualifiedName(s_, n)
                if n.casefold().startswith(typed) and q not in seen:
                    found.append(q)
                    seen.add(q)
        if not found:  # nothing starts so: the entries that follow, in name order
            found = [QualifiedName(s, n) for s, n, _ in by_key]
        return found[:limit]
