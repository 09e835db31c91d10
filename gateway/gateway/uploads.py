"""Files uploaded to a provider that sends by media id (Meta), reused by their content.

Meta keeps an uploaded file for 30 days; the gateway reuses the media id of a file with the same
content (its sha256) for ``META_MEDIA_REUSE_DAYS`` (25 by default), then uploads it again. A price
list sent to a hundred prospects is uploaded once.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select

from gateway.db import tables
from parley_shared.clock import Clock
from parley_shared.db import SessionFactory, insert_ignore


class UploadedMedia:
    def __init__(
        self, sessions: SessionFactory, clock: Clock, *, provider: str, account: str, reuse_days: float
    ) -> None:
        self.sessions = sessions
        self.clock = clock
        self.provider = provider
        self.account = account
        self.reuse = timedelta(days=reuse_days)

    async def media_id(self, sha256: str) -> str | None:
        """The id of an upload of this content that is still valid, if any."""
        t = tables.provider_media
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(t.c.media_id, t.c.uploaded_at).where(
                        t.c.provider == self.provider, t.c.account == self.account, t.c.sha256 == sha256
                    )
                )
            ).first()
        if row is None or self.clock.now() - row.uploaded_at >= self.reuse:
            return None
        return str(row.media_id)

    async def remember(self, sha256: str, media_id: str) -> None:
        t = tables.provider_media
        async with self.sessions() as session, session.begin():
            where = (t.c.provider == self.provider) & (t.c.account == self.account) & (t.c.sha256 == sha256)
            await session.execute(delete(t).where(where))
            values = {
                "provider": self.provider,
                "account": self.account,
                "sha256": sha256,
                "media_id": media_id,
                "uploaded_at": self.clock.now(),
            }
            await insert_ignore(session, t, values, ["provider", "account", "sha256"])

    async def forget(self, sha256: str) -> None:
        t = tables.provider_media
        async with self.sessions() as session, session.begin():
            await session.execute(
                delete(t).where(t.c.provider == self.provider, t.c.account == self.account, t.c.sha256 == sha256)
            )
