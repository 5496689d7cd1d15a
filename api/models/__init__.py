"""The service's data shapes, one module per resource: its SQLModel family (``XBase``,
``XCreate``, ``XUpdate``, the ``X`` table, ``XPublic`` and ``XsPublic``) and the request and
response shapes of its routes. ``operations`` holds the shapes that belong to no table (health,
estimate, batches, plain messages).

Only the table classes know about foreign keys and timestamps. ``imageforge.api.core.db``
imports every resource module, so that creating the database creates every table.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["utcnow"]


def utcnow() -> datetime:
    """The timestamp every table's ``created_at`` and ``updated_at`` default to."""
    return datetime.now(UTC)
