"""Chainlit's persistence in citewise's own PostgreSQL: users, threads, steps, elements, and thumbs as feedback rows.

Chainlit calls these methods from its event loop; every query runs on a worker thread over a small psycopg pool,
so a slow query never blocks the socket. Thumbs are not kept in a table of their own: Chainlit names the run step
(``forId``), the turn recorded that step as its ``client_ref``, and the thumb becomes a row of ``feedback`` against
that turn, so the CLI, Slack and the web UI feed one table the evals read.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from chainlit.data.base import BaseDataLayer
from chainlit.types import Feedback, PageInfo, PaginatedResponse, Pagination, ThreadDict, ThreadFilter
from chainlit.user import PersistedUser, User
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from chat.turns.reads import thread_thumbs
from chat.turns.store import delete_feedback, turn_for_ref

T = TypeVar("T")
_STEP_COLUMNS = ("id", "threadId", "parentId", "name", "type", "input", "output", "isError", "metadata", "createdAt",
                 "start", "end", "feedback")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _step(row: dict[str, Any], feedback: dict[str, Any] | None) -> dict[str, Any]:
    step = {**row["props"], "id": row["id"], "threadId": row["thread_id"], "parentId": row["parent_id"],
            "name": row["name"], "type": row["type"], "input": row["input"] or "", "output": row["output"] or "",
            "isError": row["is_error"], "metadata": row["metadata"], "createdAt": _iso(row["created_at"]),
            "start": _iso(row["start_at"]), "end": _iso(row["end_at"])}
    if feedback:
        step["feedback"] = feedback
    return step


def element_url(element_id: str) -> str:
    """Where the browser fetches a stored element's text (the route checks that the thread is the caller's)."""
    return f"/v1/ui/elements/{element_id}"


class CitewiseDataLayer(BaseDataLayer):
    def __init__(self, url: str, pool_size: int = 4) -> None:
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, kwargs={"autocommit": True},
                                    open=True, name="citewise-ui")

    async def _run(self, fn: Callable[[psycopg.Connection], T]) -> T:
        def work() -> T:
            with self._pool.connection() as conn:
                conn.row_factory = dict_row  # type: ignore[assignment]
                return fn(conn)
        return await asyncio.to_thread(work)

    # users -------------------------------------------------------------------------------------------------------
    @staticmethod
    def _user(row: dict[str, Any] | None) -> PersistedUser | None:
        if row is None:
            return None
        return PersistedUser(id=str(row["id"]), identifier=row["identifier"], metadata=row["metadata"],
                             createdAt=_iso(row["created_at"]) or "")

    async def get_user(self, identifier: str) -> PersistedUser | None:
        return await self._run(lambda c: self._user(c.execute(
            "SELECT * FROM ui_users WHERE identifier = %s", (identifier,)).fetchone()))

    async def create_user(self, user: User) -> PersistedUser | None:
        return await self._run(lambda c: self._user(c.execute(
            "INSERT INTO ui_users (identifier, metadata) VALUES (%s, %s) ON CONFLICT (identifier) "
            "DO UPDATE SET metadata = EXCLUDED.metadata RETURNING *",
            (user.identifier, json.dumps(user.metadata or {}))).fetchone()))

    # feedback ----------------------------------------------------------------------------------------------------
    async def upsert_feedback(self, feedback: Feedback) -> str:
        """A thumb from the UI, stored through the front desk (its rule: the asker or an admin rates a turn). The
        rater is the signed-in user of this Chainlit session; the message must be an answer of this thread."""
        from chat.desk.frontdesk import Rating, Rejected
        from chat.web import mount

        turn_id = await self._run(lambda conn: turn_for_ref(conn, feedback.forId))
        if turn_id is None:
            raise ValueError(f"no answer recorded for message {feedback.forId}; only answers take feedback")
        rating = Rating(turn_id=turn_id, value=1 if feedback.value == 1 else -1, user_id=mount.REQUEST_USER.get(),
                        channel="web", comment=feedback.comment, conversation_id=feedback.threadId or None,
                        feedback_id=int(feedback.id) if feedback.id else None)
        try:
            return str(await asyncio.to_thread(mount.current().desk.rate, rating))
        except Rejected as exc:
            raise ValueError(str(exc)) from None

    async def delete_feedback(self, feedback_id: str) -> bool:
        from chat.web import mount

        user = mount.REQUEST_USER.get()
        return await self._run(lambda conn: delete_feedback(conn, int(feedback_id), user))

    # elements ----------------------------------------------------------------------------------------------------
    async def create_element(self, element) -> None:  # type: ignore[override]
        content = element.content if isinstance(element.content, str) else None
        props = {"language": getattr(element, "language", None), "size": getattr(element, "size", None)}

        def work(conn: psycopg.Connection) -> None:
            self._ensure_thread(conn, element.thread_id)
            conn.execute(
                "INSERT INTO ui_elements (id, thread_id, for_id, type, name, display, mime, content, props) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET content = "
                "EXCLUDED.content, for_id = EXCLUDED.for_id, name = EXCLUDED.name",
                (element.id, element.thread_id, element.for_id, element.type, element.name, element.display,
                 element.mime, content, json.dumps(props)))
        await self._run(work)

    @staticmethod
    def _element(row: dict[str, Any]) -> dict[str, Any]:
        return {"id": row["id"], "threadId": row["thread_id"], "forId": row["for_id"], "type": row["type"],
                "name": row["name"], "display": row["display"], "mime": row["mime"],
                "url": element_url(row["id"]), **{k: v for k, v in row["props"].items() if v is not None}}

    async def get_element(self, thread_id: str, element_id: str):  # type: ignore[override]
        row = await self._run(lambda c: c.execute("SELECT * FROM ui_elements WHERE id = %s AND thread_id = %s",
                                                  (element_id, thread_id)).fetchone())
        return self._element(row) if row else None

    async def delete_element(self, element_id: str, thread_id: str | None = None) -> None:
        await self._run(lambda c: c.execute("DELETE FROM ui_elements WHERE id = %s", (element_id,)))

    async def link_sources(self, documents_by_element: dict[str, str]) -> None:
        """Remember which document each source element shows, so deleting the document scrubs the element."""
        def work(conn: psycopg.Connection) -> None:
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO ui_element_sources (element_id, document_id) VALUES (%s, %s) "
                                "ON CONFLICT DO NOTHING", list(documents_by_element.items()))
        await self._run(work)

    async def element_for(self, element_id: str, identifier: str) -> dict[str, Any] | None:
        """An element's stored text, only when its thread belongs to ``identifier``."""
        return await self._run(lambda c: c.execute(
            "SELECT e.name, e.mime, e.content FROM ui_elements e JOIN ui_threads t ON t.id = e.thread_id "
            "WHERE e.id = %s AND t.user_identifier = %s", (element_id, identifier)).fetchone())

    # steps -------------------------------------------------------------------------------------------------------
    @staticmethod
    def _ensure_thread(conn: psycopg.Connection, thread_id: str) -> None:
        conn.execute("INSERT INTO ui_threads (id) VALUES (%s) ON CONFLICT (id) DO NOTHING", (thread_id,))

    async def create_step(self, step_dict) -> None:  # type: ignore[override]
        await self._upsert_step(dict(step_dict))

    async def update_step(self, step_dict) -> None:  # type: ignore[override]
        await self._upsert_step(dict(step_dict))

    async def _upsert_step(self, s: dict[str, Any]) -> None:
        props = {k: v for k, v in s.items() if k not in _STEP_COLUMNS}

        def work(conn: psycopg.Connection) -> None:
            self._ensure_thread(conn, s["threadId"])
            conn.execute(
                "INSERT INTO ui_steps (id, thread_id, parent_id, name, type, input, output, is_error, metadata, props, "
                "created_at, start_at, end_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, input = EXCLUDED.input, "
                "output = EXCLUDED.output, is_error = EXCLUDED.is_error, metadata = EXCLUDED.metadata, "
                "props = EXCLUDED.props, start_at = COALESCE(EXCLUDED.start_at, ui_steps.start_at), "
                "end_at = COALESCE(EXCLUDED.end_at, ui_steps.end_at)",
                (s["id"], s["threadId"], s.get("parentId"), s.get("name"), s.get("type") or "undefined",
                 s.get("input"), s.get("output"), bool(s.get("isError")), json.dumps(s.get("metadata") or {}),
                 json.dumps(props, default=str), s.get("createdAt"), s.get("start"), s.get("end")))
            conn.execute("UPDATE ui_threads SET updated_at = now() WHERE id = %s", (s["threadId"],))
        await self._run(work)

    async def delete_step(self, step_id: str) -> None:
        await self._run(lambda c: c.execute("DELETE FROM ui_steps WHERE id = %s", (step_id,)))

    # threads -----------------------------------------------------------------------------------------------------
    async def get_thread_author(self, thread_id: str) -> str:
        row = await self._run(lambda c: c.execute("SELECT user_identifier FROM ui_threads WHERE id = %s",
                                                  (thread_id,)).fetchone())
        return (row or {}).get("user_identifier") or ""

    async def delete_thread(self, thread_id: str) -> None:
        await self._run(lambda c: c.execute("DELETE FROM ui_threads WHERE id = %s", (thread_id,)))

    async def list_threads(self, pagination: Pagination, filters: ThreadFilter) -> PaginatedResponse[ThreadDict]:
        def work(conn: psycopg.Connection) -> PaginatedResponse[ThreadDict]:
            if not filters.userId:
                return PaginatedResponse(PageInfo(False, None, None), [])
            rows = conn.execute(
                "SELECT t.* FROM ui_threads t WHERE t.user_id = %(user)s::uuid "
                "AND (%(search)s::text IS NULL OR t.name ILIKE '%%' || %(search)s || '%%' OR EXISTS (SELECT 1 FROM "
                "ui_steps s WHERE s.thread_id = t.id AND s.output ILIKE '%%' || %(search)s || '%%')) "
                "AND (%(cursor)s::text IS NULL OR (t.updated_at, t.id) < (SELECT updated_at, id FROM ui_threads "
                "WHERE id = %(cursor)s)) ORDER BY t.updated_at DESC, t.id DESC LIMIT %(limit)s",
                {"user": filters.userId, "search": filters.search or None, "cursor": pagination.cursor,
                 "limit": pagination.first + 1}).fetchall()
            more = len(rows) > pagination.first
            rows = rows[:pagination.first]
            data = [self._thread(r, [], []) for r in rows]
            return PaginatedResponse(PageInfo(more, rows[0]["id"] if rows else None, rows[-1]["id"] if rows else None),
                                     data)  # type: ignore[arg-type]
        return await self._run(work)

    @staticmethod
    def _thread(row: dict[str, Any], steps: list[dict], elements: list[dict]) -> ThreadDict:
        return ThreadDict(id=row["id"], createdAt=_iso(row["created_at"]) or "", name=row["name"],
                          userId=str(row["user_id"]) if row["user_id"] else None,
                          userIdentifier=row["user_identifier"], tags=row["tags"], metadata=row["metadata"],
                          steps=steps, elements=elements)  # type: ignore[typeddict-item]

    async def get_thread(self, thread_id: str) -> ThreadDict | None:
        def work(conn: psycopg.Connection) -> ThreadDict | None:
            row = conn.execute("SELECT * FROM ui_threads WHERE id = %s", (thread_id,)).fetchone()
            if row is None:
                return None
            thumbs = {r["client_ref"]: {"id": str(r["id"]), "forId": r["client_ref"],
                                        "value": 1 if r["value"] > 0 else 0, "comment": r["comment"]}
                      for r in thread_thumbs(conn, thread_id)}
            steps = [_step(s, thumbs.get(s["id"])) for s in conn.execute(
                "SELECT * FROM ui_steps WHERE thread_id = %s ORDER BY created_at, start_at", (thread_id,))]
            elements = [self._element(e) for e in conn.execute(
                "SELECT * FROM ui_elements WHERE thread_id = %s", (thread_id,))]
            return self._thread(row, steps, elements)
        return await self._run(work)

    async def update_thread(self, thread_id: str, name: str | None = None, user_id: str | None = None,
                            metadata: dict | None = None, tags: list[str] | None = None) -> None:
        def work(conn: psycopg.Connection) -> None:
            ident = None
            if user_id:
                found = conn.execute("SELECT identifier FROM ui_users WHERE id = %s::uuid", (user_id,)).fetchone()
                ident = found["identifier"] if found else None
            conn.execute(
                "INSERT INTO ui_threads (id, name, user_id, user_identifier, tags, metadata) "
                "VALUES (%s, %s, %s, %s, COALESCE(%s, '{}'::text[]), COALESCE(%s::jsonb, '{}')) "
                "ON CONFLICT (id) DO UPDATE SET name = COALESCE(EXCLUDED.name, ui_threads.name), "
                "user_id = COALESCE(ui_threads.user_id, EXCLUDED.user_id), "
                "user_identifier = COALESCE(ui_threads.user_identifier, EXCLUDED.user_identifier), "
                "tags = COALESCE(%s, ui_threads.tags), "
                "metadata = ui_threads.metadata || COALESCE(%s::jsonb, '{}'), updated_at = now()",
                (thread_id, name, user_id, ident, tags, json.dumps(metadata) if metadata else None, tags,
                 json.dumps(metadata) if metadata else None))
        await self._run(work)

    async def get_favorite_steps(self, user_id: str) -> list:  # type: ignore[override]
        rows = await self._run(lambda c: c.execute(
            "SELECT s.* FROM ui_steps s JOIN ui_threads t ON t.id = s.thread_id WHERE t.user_id = %s::uuid "
            "AND s.metadata ->> 'favorite' = 'true' ORDER BY s.created_at DESC", (user_id,)).fetchall())
        return [_step(r, None) for r in rows]

    async def build_debug_url(self) -> str:
        return ""

    async def close(self) -> None:
        await asyncio.to_thread(self._pool.close)
