"""REST and WebSocket API, users and roles, audit log and the web dashboard.

``create_app(settings, runtime)`` builds the FastAPI app of one runtime;
``serve(...)`` runs the runtime and the app in one asyncio loop.
"""

from autofab.api.app import create_app
from autofab.api.audit import AuditEntry, AuditLog, ChainCheck
from autofab.api.base import AlarmProvider, ApiSettings, Role, RuntimeLike, User, user_db_path
from autofab.api.stream import StreamHub
from autofab.api.users import UserStore, hash_password, verify_password

__all__ = [
    "AlarmProvider",
    "ApiSettings",
    "AuditEntry",
    "AuditLog",
    "ChainCheck",
    "Role",
    "RuntimeLike",
    "StreamHub",
    "User",
    "UserStore",
    "create_app",
    "hash_password",
    "user_db_path",
    "verify_password",
]
