"""The assistant's conversations: data access only.

The conversation itself (messages, current storyboard, settings) lives in the LangGraph
checkpointer under the conversation id; these rows only record who owns which conversation.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func
from sqlmodel import Session, col, select

from imageforge.api.models import utcnow
from imageforge.api.models.conversation import Conversation

__all__ = [
    "create_conversation",
    "delete_conversation",
    "get_conversation",
    "list_conversations",
    "new_conversation_id",
    "touch_conversation",
]


def new_conversation_id() -> str:
    return uuid.uuid4().hex


def create_conversation(*, session: Session, conversation_id: str, user_id: int, title: str) -> Conversation:
    conversation = Conversation(id=conversation_id, user_id=user_id, title=title[:120])
    session.add(conversation)
    session.commit()
    session.refresh(conversation)
    return conversation


def get_conversation(*, session: Session, conversation_id: str, user_id: int) -> Conversation | None:
    """The conversation if it exists and belongs to ``user_id``."""
    conversation = session.get(Conversation, conversation_id)
    if conversation is None or conversation.user_id != user_id:
        return None
    return conversation


def list_conversations(*, session: Session, user_id: int, skip: int, limit: int) -> tuple[Sequence[Conversation], int]:
    query = (
        select(Conversation)
        .where(Conversation.user_id == user_id)
        .order_by(col(Conversation.updated_at).desc(), col(Conversation.id))
        .offset(skip)
        .limit(limit)
    )
    count = session.exec(select(func.count()).select_from(Conversation).where(Conversation.user_id == user_id)).one()
    return session.exec(query).all(), int(count)


def touch_conversation(*, session: Session, conversation_id: str) -> None:
    conversation = session.get(Conversation, conversation_id)
    if conversation is not None:
        conversation.updated_at = utcnow()
        session.add(conversation)
        session.commit()


def delete_conversation(*, session: Session, conversation_id: str) -> None:
    conversation = session.get(Conversation, conversation_id)
    if conversation is not None:
        session.delete(conversation)
        session.commit()
