"""Access through the client API: API tokens with roles, and the audit trail (kept by the tracker:
:mod:`wfcelery.tracker.access`)."""

from __future__ import annotations

from wfcelery.client.audit import audited
from wfcelery.client.base import EngineBase
from wfcelery.errors import (
    ControlError,
)
from wfcelery.tracker.access import AuditEntry, Role, TokenInfo


class Access(EngineBase):
    """Tokens and the audit trail (see the module docstring)."""

    @audited("token.create", lambda self, name, *a, result=None, **k: f"token {name}")
    def create_token(self, name: str, role: Role | str) -> str:
        """A new API token for ``name`` with ``role`` (viewer, operator, admin): returned once; the tracker
        keeps only its hash. Raises :class:`ControlError` when the name is taken or invalid."""
        try:
            parsed = Role(role)
        except ValueError:
            raise ControlError(f"role {role!r}: choose viewer, operator or admin") from None
        return self.tracker.create_token(name, parsed)

    def tokens(self) -> list[TokenInfo]:
        """Every token's name, role and times (never the token)."""
        return self.tracker.tokens()

    @audited("token.revoke", lambda self, name, *a, result=None, **k: f"token {name}")
    def revoke_token(self, name: str) -> None:
        """Revoke a token: every server refuses it from its next request on."""
        self.tracker.revoke_token(name)

    def authenticate(self, token: str) -> TokenInfo | None:
        """The token's name and role, or None for an unknown or revoked one."""
        return self.tracker.token_owner(token)

    def access_required(self) -> bool:
        """True once any token exists: servers then serve nothing without credentials."""
        return self.tracker.any_token()

    def audit_log(self, limit: int = 100) -> list[AuditEntry]:
        """The newest entries of the audit trail, newest first."""
        return self.tracker.audit_log(limit)
