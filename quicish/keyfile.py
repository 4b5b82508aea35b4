"""The secrets a fleet of servers shares (``Config.secrets``, ``quicish serve --secrets``):
session-ticket keys, the Retry / NEW_TOKEN token keys and the stateless-reset key, in one
file, so that a ticket, a token or a reset made by one server is honoured by every other.

The file is JSON (``quicish secrets new FILE`` writes one)::

    {"format": "quicish-secrets", "version": 1,
     "ticket_keys": ["<base64, 32 bytes>", ...],
     "token_keys": ["<base64, 32 bytes>", ...],
     "reset_key": "<base64, 32 bytes>"}

Ticket and token keys are listed newest first (1 to 8 of each): a server seals with the
first and opens with any. A rotation adds a key second (``quicish secrets stage``), is
deployed everywhere, is moved in front (``promote``) and deployed again; the oldest key
goes once what it sealed has expired (``rotate`` does both steps at once).
The reset key has no rotation: every CID's reset token must stay the same while the
connection lives. A file that its group or others may read or write is refused (as ssh
refuses such private keys): ``chmod 600``. No message or ``repr`` shows a key.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import stat
from dataclasses import dataclass

from .errors import ConfigError

FORMAT = "quicish-secrets"
VERSION = 1
KEY_SIZE = 32
MAX_KEYS = 8  # ticket or token keys one file holds


@dataclass(frozen=True, eq=True, repr=False)
class FleetSecrets:
    """Ticket keys and token keys (newest first) and the reset key of a fleet."""

    ticket_keys: tuple[bytes, ...]
    token_keys: tuple[bytes, ...]
    reset_key: bytes

    def __post_init__(self) -> None:
        for name in ("ticket_keys", "token_keys"):
            keys = getattr(self, name)
            if not isinstance(keys, tuple) or not 1 <= len(keys) <= MAX_KEYS:
                raise ConfigError(f"secrets: {name} must hold 1 to {MAX_KEYS} keys")
            for i, key in enumerate(keys):
                _check_key(f"{name}[{i}]", key)
            if len(set(keys)) != len(keys):
                raise ConfigError(f"secrets: {name} lists a key twice")
        _check_key("reset_key", self.reset_key)

    def __repr__(self) -> str:
        return (
            f"FleetSecrets({len(self.ticket_keys)} ticket keys, {len(self.token_keys)} token "
            f"keys, reset key; fingerprint {self.fingerprint})"
        )

    @property
    def fingerprint(self) -> str:
        """16 hex digits naming these keys, to check that servers loaded the same file
        (a one-way hash: it reveals nothing of them)."""
        h = hashlib.sha256(b"quicish secrets fingerprint")
        for key in (*self.ticket_keys, b"|", *self.token_keys, b"|", self.reset_key):
            h.update(key)
        return h.hexdigest()[:16]

    @classmethod
    def generate(cls) -> FleetSecrets:
        """Fresh random keys: one of each."""
        return cls((os.urandom(KEY_SIZE),), (os.urandom(KEY_SIZE),), os.urandom(KEY_SIZE))

    def rotated(self, keep: int = 3, *, stage: bool = False) -> FleetSecrets:
        """A new ticket key and a new token key, at most ``keep`` of each (the oldest
        go): in front, or with ``stage`` second (opened, not yet sealing: once every
        server has it, :meth:`promoted` puts it in front)."""
        if not 2 <= keep <= MAX_KEYS:
            raise ConfigError(f"secrets: keep must be 2 to {MAX_KEYS}")
        at = 1 if stage else 0

        def add(keys: tuple[bytes, ...]) -> tuple[bytes, ...]:
            return (*keys[:at], os.urandom(KEY_SIZE), *keys[at:])[:keep]

        return FleetSecrets(add(self.ticket_keys), add(self.token_keys), self.reset_key)

    def promoted(self) -> FleetSecrets:
        """The second ticket and token keys (staged) in front of the first."""
        if len(self.ticket_keys) < 2 or len(self.token_keys) < 2:
            raise ConfigError("secrets: nothing staged to promote (one key of a kind)")

        def swap(keys: tuple[bytes, ...]) -> tuple[bytes, ...]:
            return (keys[1], keys[0], *keys[2:])

        return FleetSecrets(swap(self.ticket_keys), swap(self.token_keys), self.reset_key)

    def to_json(self) -> str:
        def b64(key: bytes) -> str:
            return base64.b64encode(key).decode()

        doc = {
            "format": FORMAT,
            "version": VERSION,
            "ticket_keys": [b64(k) for k in self.ticket_keys],
            "token_keys": [b64(k) for k in self.token_keys],
            "reset_key": b64(self.reset_key),
        }
        return json.dumps(doc, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> FleetSecrets:
        """Parse the file's text; ``ConfigError`` names what is wrong, never a key."""
        try:
            doc = json.loads(text)
        except ValueError:
            raise ConfigError("secrets: not a JSON document") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ConfigError(f'secrets: not a secrets file (no "format": "{FORMAT}")')
        if doc.get("version") != VERSION:
            raise ConfigError(f"secrets: version {doc.get('version')!r} unknown (this reads 1)")
        unknown = set(doc) - {"format", "version", "ticket_keys", "token_keys", "reset_key"}
        if unknown:
            raise ConfigError(f"secrets: unknown fields {sorted(unknown)}")
        lists = []
        for name in ("ticket_keys", "token_keys"):
            value = doc.get(name)
            if not isinstance(value, list):
                raise ConfigError(f"secrets: {name} must be a list of base64 keys")
            lists.append(tuple(_decode(f"{name}[{i}]", v) for i, v in enumerate(value)))
        return cls(lists[0], lists[1], _decode("reset_key", doc.get("reset_key")))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> FleetSecrets:
        """Read a secrets file, refusing one that its group or others may access."""
        return cls.from_json(read_private(path, "secrets"))

    def save(self, path: str | os.PathLike[str], *, replace: bool = False) -> None:
        """Write the file, readable by its owner only; ``replace``: over an existing one
        (atomically, through a new file renamed over it)."""
        write_private(path, self.to_json(), "secrets", replace=replace)


def read_private(path: str | os.PathLike[str], what: str) -> str:
    """The text of a file holding keys (``what`` names it in errors); ``ConfigError`` when
    it cannot be read or its group or others may access it."""
    path = os.fspath(path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise ConfigError(f"{what}: cannot open {path!r}: {exc.strerror}") from None
    with os.fdopen(fd, encoding="utf-8") as f:
        mode = os.fstat(f.fileno()).st_mode
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"{what}: {path!r} is accessible to group or others "
                f"(mode {stat.S_IMODE(mode):o}): chmod 600 it"
            )
        try:
            return f.read()
        except (OSError, UnicodeDecodeError):
            raise ConfigError(f"{what}: cannot read {path!r} as text") from None


def write_private(
    path: str | os.PathLike[str], text: str, what: str, *, replace: bool = False
) -> None:
    """Write ``text`` to a file only its owner may read (mode 600), atomically (a new file
    renamed over the old); without ``replace`` an existing file is an error."""
    path = os.fspath(path)
    if not replace and os.path.lexists(path):
        raise ConfigError(f"{what}: {path!r} exists (rotate it, or remove it first)")
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _check_key(name: str, key: object) -> None:
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        raise ConfigError(f"secrets: {name} must be {KEY_SIZE} bytes")


def _decode(name: str, value: object) -> bytes:
    if not isinstance(value, str):
        raise ConfigError(f"secrets: {name} must be a base64 string")
    try:
        key = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ConfigError(f"secrets: {name} is not valid base64") from None
    if len(key) != KEY_SIZE:
        raise ConfigError(f"secrets: {name} must be {KEY_SIZE} bytes, not {len(key)}")
    return key
