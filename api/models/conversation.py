"""The assistant panel's table and API shapes.

The conversation itself (messages, current storyboard, settings) lives in the LangGraph
checkpointer under the conversation id; the table only records who owns which conversation,
so that another user's conversation id is a 404 like another user's generation.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, field_validator
from sqlmodel import Field, SQLModel

from imageforge.api.models import utcnow

__all__ = [
    "CONVERSATION_ID_PATTERN",
    "GENERATION_ID_PATTERN",
    "AssistantAction",
    "AssistantMessageCreate",
    "AssistantReply",
    "Conversation",
    "ConversationDetail",
    "ConversationMessage",
    "ConversationPublic",
    "ConversationsPublic",
]

CONVERSATION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
GENERATION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class ConversationBase(SQLModel):
    title: str = Field(default="", max_length=120, description="The conversation's first message, shortened.")


class Conversation(ConversationBase, table=True):
    __tablename__ = "assistant_conversation"

    id: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="user.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, index=True)
    updated_at: datetime = Field(default_factory=utcnow)


class ConversationPublic(ConversationBase):
    id: str
    created_at: datetime
    updated_at: datetime


class ConversationsPublic(SQLModel):
    data: list[ConversationPublic]
    count: int


class AssistantMessageCreate(BaseModel):
    """POST /api/assistant/messages: one message to the assistant."""

    model_config = ConfigDict(extra="forbid", strict=True)

    conversation_id: str | None = pydantic.Field(
        None,
        pattern=CONVERSATION_ID_PATTERN,
        description="Continue this conversation; omit to start a new one.",
    )
    message: str = Field(min_length=1, max_length=4000, description="What the user says.")
    generation_id: str | None = pydantic.Field(
        None,
        pattern=GENERATION_ID_PATTERN,
        description="The storyboard the message is about; it becomes the conversation's current one. "
        "Omit to keep the conversation's current storyboard.",
    )

    @field_validator("message")
    @classmethod
    def _message_has_text(cls, value: str) -> str:
        stripped = value.strip()
        if not stripped:
            raise ValueError("`message` must contain text, got only whitespace.")
        return stripped


class AssistantAction(BaseModel):
    """Something the assistant did. ``type`` is one of ``storyboard_started``,
    ``settings_changed``, ``scene_refined``, ``winner_explained``, ``status_reported``; the
    other fields are that action's details (the new generation's id and status URL, the
    settings changed from -> to, the kept scenes and the amended prompt, the winner's scores)."""

    model_config = ConfigDict(extra="allow")

    type: str
    generation_id: str | None = None


class AssistantReply(BaseModel):
    conversation_id: str
    reply: str = Field(description="The assistant's answer, in words.")
    actions: list[AssistantAction] = Field(default_factory=list, description="What it did for this message, in order.")
    generation_id: str | None = Field(None, description="The conversation's current storyboard after this message.")


class ConversationMessage(BaseModel):
    role: Literal["user", "assistant", "tool"]
    content: str
    name: str | None = Field(None, description="The tool, for tool messages.")
    tool_calls: list[dict[str, Any]] = Field(default_factory=list, description="Tool calls of an assistant step.")
    action: AssistantAction | None = None


class ConversationDetail(ConversationPublic):
    generation_id: str | None = None
    settings: dict[str, Any] = Field(default_factory=dict, description="The settings a storyboard started here uses.")
    messages: list[ConversationMessage] = Field(default_factory=list)
