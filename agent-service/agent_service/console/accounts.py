"""Managers' accounts: logins, argon2 password hashes, roles, and the throttling of sign-ins.

* A login is stored lower-case (``Dana`` and ``dana`` are one account).
* Passwords are hashed with argon2id (argon2-cffi's defaults), in a worker thread: hashing is
  deliberately slow. An unknown login is checked against a dummy hash, so that it takes as long
  as a wrong password and answers the same.
* ``session_epoch`` is bumped when an account is disabled or its password set: every session
  signed in before then stops working at its next request.
* Failed sign-ins are rows in ``sign_in_failures`` (shared by every replica): after
  ``CONSOLE_SIGN_IN_MAX_FAILURES`` for one login, or ``..._PER_ADDRESS`` from one address, within
  ``CONSOLE_SIGN_IN_WINDOW_S``, sign-in is refused without checking the password until the oldest
  failure leaves the window.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import RowMapping

from agent_service.db.tables import managers, sign_in_failures
from parley_shared.clock import Clock
from parley_shared.db import Session, SessionFactory, insert_ignore

log = structlog.get_logger(__name__)

_HASHER = PasswordHasher()
MIN_PASSWORD = 8
MAX_PASSWORD = 200


class Role(enum.StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"


class AccountError(ValueError):
    """An account change that cannot be made (the message says why)."""


@dataclass(frozen=True)
class Manager:
    id: int
    login: str
    display_name: str
    role: Role
    active: bool
    session_epoch: int

    @property
    def admin(self) -> bool:
        return self.role is Role.ADMIN

    @classmethod
    def of(cls, row: RowMapping) -> Manager:
        return cls(
            id=int(row["id"]),
            login=row["login"],
            display_name=row["display_name"],
            role=Role(row["role"]),
            active=bool(row["active"]),
            session_epoch=int(row["session_epoch"]),
        )


def normal_login(login: str) -> str:
    return login.strip().lower()


def check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccountError(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")


async def hash_password(password: str) -> str:
    check_password(password)
    return await asyncio.to_thread(_HASHER.hash, password)


_DUMMY_HASH = _HASHER.hash("parley: no such account")


async def _verify(password_hash: str, password: str) -> bool:
    def verify() -> bool:
        try:
            return _HASHER.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


class Accounts:
    def __init__(
        self,
        sessions: SessionFactory,
        clock: Clock,
        *,
        max_failures: int = 5,
        max_failures_per_address: int = 20,
        window_s: int = 900,
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.max_failures = max_failures
        self.max_failures_per_address = max_failures_per_address
        self.window = timedelta(seconds=window_s)

    # ------------------------------------------------------------------ administration
    async def add(self, login: str, display_name: str, password: str, role: Role = Role.MANAGER) -> Manager:
        login = normal_login(login)
        if not login or len(login) > 100 or not login.isprintable() or " " in login:
            raise AccountError("a login is 1 to 100 printable characters without spaces")
        display_name = display_name.strip()
        if not display_name or len(display_name) > 100 or not display_name.isprintable():
            raise AccountError("a display name is 1 to 100 printable characters")
        password_hash = await hash_password(password)
        now = self.clock.now()
        async with self.sessions() as session, session.begin():
            row = {
                "login": login,
                "display_name": display_name,
                "password_hash": password_hash,
                "role": Role(role).value,
                "active": True,
                "session_epoch": 0,
                "created_at": now,
                "updated_at": now,
            }
            result = await insert_ignore(session, managers, row, ["login"])
            if not result.rowcount:
                raise AccountError(f"the login {login!r} is taken")
            created = await self._by_login(session, login)
        assert created is not None
        log.info("console.manager_added", manager_id=created.id, role=created.role.value)
        return created

    async def ensure_admin(self, login: str, display_name: str, password: str) -> bool:
        """The first admin from the environment: created if the login does not exist (an existing
        account, its password included, is left as it is). True when it was created."""
        async with self.sessions() as session:
            if await self._by_login(session, normal_login(login)) is not None:
                return False
        try:
            await self.add(login, display_name, password, Role.ADMIN)
        except AccountError as exc:
            if "taken" in str(exc):  # another replica created it at the same moment
                return False
            raise
        return True

    async def list(self) -> list[Manager]:
        async with self.sessions() as session:
            rows = (await session.execute(select(managers).order_by(managers.c.login))).mappings().all()
        return [Manager.of(r) for r in rows]

    async def set_active(self, login_or_id: str | int, active: bool) -> Manager:
        """Disable (open sessions end at once) or enable an account."""
        return await self._change(login_or_id, {"active": active, "session_epoch": managers.c.session_epoch + 1})

    async def set_password(self, login_or_id: str | int, password: str) -> Manager:
        """A new password; every session signed in with the old one ends."""
        password_hash = await hash_password(password)
        return await self._change(
            login_or_id, {"password_hash": password_hash, "session_epoch": managers.c.session_epoch + 1}
        )

    async def _change(self, login_or_id: str | int, values: dict[str, Any]) -> Manager:
        m = managers.c
        where = m.id == login_or_id if isinstance(login_or_id, int) else m.login == normal_login(login_or_id)
        async with self.sessions() as session, session.begin():
            stmt = update(managers).where(where).values(**values, updated_at=self.clock.now()).returning(*managers.c)
            row = (await session.execute(stmt)).mappings().first()
        if row is None:
            raise AccountError("no such account")
        log.info("console.manager_changed", manager_id=row["id"], fields=sorted(values))
        return Manager.of(row)

    async def get(self, manager_id: int) -> Manager | None:
        async with self.sessions() as session:
            row = (await session.execute(select(managers).where(managers.c.id == manager_id))).mappings().first()
        return Manager.of(row) if row is not None else None

    async def _by_login(self, session: Session, login: str) -> Manager | None:
        row = (await session.execute(select(managers).where(managers.c.login == login))).mappings().first()
        return Manager.of(row) if row is not None else None

    # ------------------------------------------------------------------ signing in
    async def throttled(self, login: str, address: str) -> datetime | None:
        """When sign-in for this login or from this address opens again (None: it is open now)."""
        now = self.clock.now()
        since = now - self.window
        f = sign_in_failures.c
        async with self.sessions() as session:
            for column, value, limit in (
                (f.login, normal_login(login)[:100], self.max_failures),
                (f.address, address[:64], self.max_failures_per_address),
            ):
                recent = (
                    select(f.created_at)
                    .where(column == value, f.created_at > since)
                    .order_by(f.created_at.desc())
                    .limit(limit)
                    .subquery()
                )
                count, oldest = (await session.execute(select(func.count(), func.min(recent.c.created_at)))).one()
                if count >= limit:
                    return oldest + self.window
        return None

    async def sign_in(self, login: str, password: str, address: str) -> Manager | None:
        """The manager, if the login exists, is active and the password matches; a failure is counted."""
        login = normal_login(login)[:100]
        async with self.sessions() as session:
            row = (await session.execute(select(managers).where(managers.c.login == login))).mappings().first()
        ok = await _verify(row["password_hash"] if row is not None else _DUMMY_HASH, password[:MAX_PASSWORD])
        now = self.clock.now()
        if row is None or not ok or not row["active"]:
            async with self.sessions() as session, session.begin():
                failure = {"login": login, "address": address[:64], "created_at": now}
                await session.execute(sign_in_failures.insert().values(failure))
                # Keep the table small: what left the window no longer counts.
                expired = sign_in_failures.c.created_at < now - self.window
                await session.execute(delete(sign_in_failures).where(expired))
            log.info("console.sign_in_failed", known=row is not None)
            return None
        async with self.sessions() as session, session.begin():
            await session.execute(update(managers).where(managers.c.id == row["id"]).values(last_sign_in_at=now))
        log.info("console.signed_in", manager_id=row["id"])
        return Manager.of(row)
