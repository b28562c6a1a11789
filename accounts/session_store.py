"""Session keys that name their tenant (SESSION_ENGINE).

Each tenant keeps its sessions in its own schema, so another tenant's
session key is simply not found on this host and the request arrives signed
out. Found or not, a key of another tenant is an attack (browsers never send
one host's cookie to another), while a key of this tenant that is not found
is usually a session that expired. The first 8 characters of every new key
are a tag of the tenant's schema, so the two can be told apart without
looking in other tenants' schemas: ``names_another_tenant``.

The tag is a plain hash, not a secret: it says which tenant issued the key,
and a key is worth nothing without the session it names. Keys issued before
the tag (32 characters) count as untagged and are never called foreign.
"""

import hashlib

from django.contrib.sessions.backends.cached_db import SessionStore as CachedDbStore
from django.db import connection
from django.utils.crypto import get_random_string

TAG_LENGTH = 8
# Django's session key column holds 40 characters: the tag and 32 random ones.
TAGGED_KEY_LENGTH = 40
KEY_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"


def tenant_tag(schema: str) -> str:
    return hashlib.sha256(f"nimbus-session:{schema}".encode()).hexdigest()[:TAG_LENGTH]


def names_another_tenant(session_key: str, schema: str) -> bool:
    """Whether ``session_key`` was issued by another tenant than ``schema``'s."""
    return len(session_key) == TAGGED_KEY_LENGTH and session_key[
        :TAG_LENGTH
    ] != tenant_tag(schema)


class SessionStore(CachedDbStore):
    def _get_new_session_key(self) -> str:
        tag = tenant_tag(connection.schema_name)
        while True:
            key = tag + get_random_string(TAGGED_KEY_LENGTH - TAG_LENGTH, KEY_CHARS)
            if not self.exists(key):
                return key
