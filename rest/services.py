"""What every handler can reach: settings, the store, the messenger and its accounts,
files, wake-ups."""

from __future__ import annotations

from dataclasses import dataclass

from rest.accounts import Accounts
from rest.messenger import Messenger
from shared.files import BlobStore
from shared.models import BotRecord, UserRecord
from shared.settings import Settings
from shared.store import Store, Wakeups

__all__ = ["BotCall", "Services", "UserCall"]


@dataclass(slots=True)
class Services:
    settings: Settings
    store: Store
    messenger: Messenger
    wakeups: Wakeups
    files: BlobStore
    draining: bool = False

    @property
    def accounts(self) -> Accounts:
        """Users, bots and their tokens."""
        return self.messenger.accounts


@dataclass(frozen=True, slots=True)
class BotCall:
    """A Bot API call: the services, the authenticated bot, the dialect it came in
    (``native`` or ``telegram``) and its ``Idempotency-Key``, if it had one."""

    services: Services
    bot: BotRecord
    dialect: str = "native"
    idempotency_key: str | None = None

    @property
    def caller(self) -> str:
        """Who makes the call, as results of Idempotency-Key calls are kept."""
        return f"b{self.bot.id}"


@dataclass(frozen=True, slots=True)
class UserCall:
    """A client or management API call: the services and the authenticated user."""

    services: Services
    user: UserRecord
    idempotency_key: str | None = None

    @property
    def caller(self) -> str:
        """Who makes the call, as results of Idempotency-Key calls are kept."""
        return f"u{self.user.id}"
