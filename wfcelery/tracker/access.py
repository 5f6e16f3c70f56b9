"""Who may do what, and who did what: API tokens with roles, and the audit trail, kept in the tracker.

A token is shown once, when it is created; the tracker keeps only its SHA-256 (a token is 32 random bytes,
so a plain hash is as strong as a slow one would be) with its name, role and times. Revoking deletes both
records at once, so every server refuses the token from its next request on.

The audit trail is a Redis stream capped at ``wfcelery_audit_maxlen`` entries (approximately, as ``XADD
MAXLEN ~`` trims): each write through the REST API, the CLI or the Python API adds who (a token's name, a
Basic user, ``cli:<os user>`` or ``api``), what, on what, and how it ended.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

from wfcelery.errors import ControlError
from wfcelery.tracker.base import TrackerBase, converted_errors

#: Tokens start with this, so a secret scanner (or a person) can tell one.
TOKEN_PREFIX = "wfc_"


class Role(str, Enum):
    """What a token may do: a viewer reads; an operator also submits, controls and signals runs; an admin
    also deletes, cleans up, and manages pools, schedules and tokens."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        """True when this role has at least ``needed``'s powers."""
        return _RANK[self] >= _RANK[needed]

    def __str__(self) -> str:
        return self.value


_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed: never the token itself."""

    name: str
    role: Role
    created: float
    last_used: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role.value,
            "created": self.created,
            "last_used": self.last_used,
        }


@dataclass(frozen=True)
class AuditEntry:
    """One write: when, who, what, on what, and how it ended (``ok`` or the error)."""

    at: float
    actor: str
    action: str
    target: str
    outcome: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
        }


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.@-")


def check_token_name(name: str) -> str:
    if not name or len(name) > 64 or not set(name) <= _NAME_CHARS:
        raise ControlError(f"token name {name!r}: use 1-64 letters, digits, '_', '.', '@' or '-'")
    return name


class Access(TrackerBase):
    """Tokens and the audit trail (see the module docstring)."""

    def create_token(self, name: str, role: Role) -> str:
        """A new token for ``name`` (refused if the name exists): returned once, stored as a hash."""
        check_token_name(name)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = json.dumps({"hash": token_hash(token), "role": role.value, "created": time.time()})
        with converted_errors(f"create token {name}"):
            if not self.client.hsetnx(self.keys.tokens, name, record):
                raise ControlError(f"a token named {name!r} exists: revoke it first")
            self.client.hset(self.keys.token_hashes, token_hash(token), name)
        return token

    def tokens(self) -> list[TokenInfo]:
        with converted_errors("list tokens"):
            raw = self.client.hgetall(self.keys.tokens)
        return sorted((_info(name, value) for name, value in raw.items()), key=lambda t: t.name)

    def revoke_token(self, name: str) -> None:
        """Delete a token: refused by every server from its next request on."""
        with converted_errors(f"revoke token {name}"):
            value = self.client.hget(self.keys.tokens, name)
            if value is None:
                raise ControlError(f"no token named {name!r}")
            pipe = self.client.pipeline(transaction=False)
            pipe.hdel(self.keys.tokens, name)
            pipe.hdel(self.keys.token_hashes, json.loads(value)["hash"])
            pipe.execute()

    def token_owner(self, token: str) -> TokenInfo | None:
        """The token's name and role, or None for an unknown or revoked token; marks it used."""
        digest = token_hash(token)
        with converted_errors("check a token"):
            name = self.client.hget(self.keys.token_hashes, digest)
            value = None if name is None else self.client.hget(self.keys.tokens, name)
            if value is None or json.loads(value)["hash"] != digest:
                return None
            record = {**json.loads(value), "last_used": time.time()}
            self.client.hset(self.keys.tokens, name, json.dumps(record))
        return _info(name, json.dumps(record))

    def any_token(self) -> bool:
        with converted_errors("check for tokens"):
            return bool(self.client.hlen(self.keys.tokens))

    def audit(self, entry: AuditEntry, maxlen: int) -> None:
        with converted_errors("write the audit trail"):
            self.queue_audit(self.client, entry, maxlen)

    def queue_audit(self, client: Any, entry: AuditEntry, maxlen: int) -> None:
        """The audit entry's XADD on ``client`` (the tracker's client, or a pipeline of it)."""
        fields = {k: str(v) for k, v in entry.to_dict().items()}
        client.xadd(self.keys.audit, fields, maxlen=maxlen, approximate=True)

    def audit_log(self, limit: int = 100) -> list[AuditEntry]:
        """The newest ``limit`` entries, newest first."""
        with converted_errors("read the audit trail"):
            rows = self.client.xrevrange(self.keys.audit, count=limit)
        return [
            AuditEntry(float(f["at"]), f["actor"], f["action"], f["target"], f["outcome"]) for _, f in rows
        ]


def _info(name: str, value: str) -> TokenInfo:
    record = json.loads(value)
    return TokenInfo(name, Role(record["role"]), float(record["created"]), record.get("last_used"))
