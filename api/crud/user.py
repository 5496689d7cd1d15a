"""Users: data access only. Every function takes the session as a keyword argument and
commits its own unit of work."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from imageforge.api.core.security import hash_password, verify_and_update, verify_dummy
from imageforge.api.models import utcnow
from imageforge.api.models.user import User, UserCacheRegistration, UserCreate, new_public_id

__all__ = [
    "DEV_USER_EMAIL",
    "authenticate",
    "create_user",
    "deactivate_user",
    "delete_user",
    "get_or_create_dev_user",
    "get_user",
    "get_user_by_email",
    "get_user_by_public_id",
    "get_user_cache_registration",
    "register_user_cache",
    "set_password",
    "unregister_user_cache",
]

DEV_USER_EMAIL = "dev@localhost"


def create_user(*, session: Session, user_create: UserCreate) -> User:
    if get_user_by_email(session=session, email=user_create.email) is not None:
        raise ValueError(f"`email` {user_create.email!r} is already registered.")
    user = User(
        email=user_create.email,
        is_active=user_create.is_active,
        is_superuser=user_create.is_superuser,
        hashed_password=hash_password(user_create.password),
    )
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def get_user(*, session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def get_user_by_public_id(*, session: Session, public_id: str) -> User | None:
    return session.exec(select(User).where(User.public_id == public_id)).first()


def get_user_by_email(*, session: Session, email: str) -> User | None:
    """E-mail addresses are stored lower-case, so the lookup ignores case."""
    return session.exec(select(User).where(User.email == email.strip().lower())).first()


def authenticate(*, session: Session, email: str, password: str) -> User | None:
    """The user whose password this is, or None. An unknown address costs the same hash work as
    a known one (timing tells nothing). A stored hash in an older format (or with weaker
    parameters) is replaced by a current one on the way."""
    user = get_user_by_email(session=session, email=email)
    if user is None:
        verify_dummy(password)
        return None
    valid, new_hash = verify_and_update(password, user.hashed_password)
    if not valid:
        return None
    if new_hash is not None:
        user.hashed_password = new_hash
        session.add(user)
        session.commit()
        session.refresh(user)
    return user


def _revoke_tokens(user: User) -> None:
    user.token_version += 1


def set_password(*, session: Session, user: User, password: str) -> User:
    """A new password; every token issued before stops working at once."""
    user.hashed_password = hash_password(password)
    _revoke_tokens(user)
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def deactivate_user(*, session: Session, user: User) -> User:
    """The user can no longer sign in, and their tokens stop working at once."""
    user.is_active = False
    _revoke_tokens(user)
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def delete_user(*, session: Session, user: User) -> None:
    """Remove the account: its e-mail (free to register again), password, public id and tokens.

    The row itself stays as an anonymous tombstone that owns the user's generations,
    characters and presets, so its integer key is never handed to a later user (SQLite reuses
    the largest key after a delete) and nothing the user made becomes someone else's. Trace and
    upload files go with retention.
    """
    user.email = f"deleted-{user.public_id}@deleted.invalid"
    user.hashed_password = "!"  # matches no password
    user.is_active = False
    user.is_superuser = False
    user.public_id = new_public_id()
    _revoke_tokens(user)
    session.add(user)
    session.commit()


def get_or_create_dev_user(*, session: Session) -> User:
    """The single user of dev mode; it has no usable password."""
    user = get_user_by_email(session=session, email=DEV_USER_EMAIL)
    if user is not None:
        return user
    user = User(email=DEV_USER_EMAIL, hashed_password="!")
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def get_user_cache_registration(*, session: Session) -> UserCacheRegistration | None:
    return session.get(UserCacheRegistration, "users")


def register_user_cache(*, session: Session, broker: str) -> UserCacheRegistration:
    """Record that API processes keep users in memory and listen on ``broker``; the token stays
    the one the first process made, so every process sets the same one on the broker."""
    registration = get_user_cache_registration(session=session)
    if registration is None:
        session.add(UserCacheRegistration(broker=broker))
        try:
            session.commit()
        except IntegrityError:  # another API process registered at the same moment
            session.rollback()
        registration = get_user_cache_registration(session=session)
        assert registration is not None
    registration.broker = broker
    registration.registered_at = utcnow()
    session.add(registration)
    session.commit()
    session.refresh(registration)
    return registration


def unregister_user_cache(*, session: Session) -> bool:
    """Forget the registration (an embedded API process serves this database alone now)."""
    registration = get_user_cache_registration(session=session)
    if registration is None:
        return False
    session.delete(registration)
    session.commit()
    return True
