"""Rows written straight into the database, as the processor would leave them, for the pages."""

from __future__ import annotations

from collections.abc import Sequence
from html.parser import HTMLParser

from kubeface.core.db import Database, execute, last_insert_id

# (top, right, bottom, left, person name or None)
FaceBox = tuple[int, int, int, int, str | None]


def add_image(db: Database, path: str, status: str = "pending", person: str | None = None,
              faces: Sequence[FaceBox] = (), error: str | None = None) -> int:
    with db.transaction() as conn:
        execute(conn, "INSERT INTO images (path, status, person_id, face_count, last_error)"
                      " VALUES (:path, :status, :person, :count, :error)",
                path=path, status=status, person=_person(conn, person),
                count=len(faces) if faces or status in ("processed", "unknown", "no_face")
                else None, error=error)
        image_id = last_insert_id(conn)
        for i, (top, right, bottom, left, name) in enumerate(faces):
            execute(conn, "INSERT INTO faces (image_id, face_index, box_top, box_right,"
                          " box_bottom, box_left, person_id, distance)"
                          " VALUES (:i, :n, :t, :r, :b, :l, :p, :d)",
                    i=image_id, n=i, t=top, r=right, b=bottom, l=left, p=_person(conn, name),
                    d=0.4 if name else 0.8)
    return image_id


def _person(conn, name: str | None) -> int | None:
    if name is None:
        return None
    execute(conn, "INSERT IGNORE INTO person (name) VALUES (:n)", n=name)
    return int(conn.query("SELECT id FROM person WHERE name = :n", n=name).scalar())


class Table(HTMLParser):
    """The rows of ``<table id="images">`` as lists of cell texts, and the page's links by
    their words."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.links: dict[str, str] = {}
        self._in_table = False
        self._cell: list[str] | None = None
        self._href: str | None = None
        self._text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table" and attrs.get("id") == "images":
            self._in_table = True
        elif self._in_table and tag == "tr":
            self._row: list[str] = []
        elif self._in_table and tag == "td":
            self._cell = []
        elif tag == "a":
            self._href, self._text = attrs.get("href"), []

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_table = False
        elif self._in_table and tag == "td" and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif self._in_table and tag == "tr" and self._row:
            self.rows.append(self._row)
        elif tag == "a" and self._href is not None:
            # keyed by the words alone, the arrows stripped
            self.links["".join(self._text).strip(" «»‹›")] = self._href  # noqa: RUF001
            self._href = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._href is not None:
            self._text.append(data)

    @property
    def ids(self) -> list[int]:
        return [int(r[0]) for r in self.rows]
