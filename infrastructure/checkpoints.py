"""Signed checkpoints of the event store's digest chain: a small text note that says "at this
origin, the chain's head was position P with digest D", signed with an Ed25519 key.

Kept anywhere outside the store (another machine, a ticket, a transparency log), a checkpoint
lets `ledgerllm audit verify --checkpoint FILE` prove that today's chain still extends it, so
removing the newest events (and their links) is detected without any anchor stored beside the
data. The format follows the C2SP "signed note" and "tlog-checkpoint" conventions:

    <origin>\\n
    <head position>\\n
    <base64 of the 32-byte head digest>\\n
    time <ISO 8601 UTC>\\n          (an extension line: when it was signed)
    \\n
    \u2014 <origin> <base64(key id (4 bytes) || Ed25519 signature (64 bytes))>\\n

The signature covers the note's text up to and including the newline before the blank line.
The key id is the first 4 bytes of SHA-256(origin || "\\n" || 0x01 || public key); a verifier
key is written `<origin>+<key id hex>+<base64(0x01 || public key)>`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from infrastructure.files import atomic_write

_ALG_ED25519 = b"\x01"
_ORIGIN = re.compile(r"[^\s+\u2014][^\s+]{0,254}")
_SIGNATURE_LINE = re.compile(r"\u2014 (\S+) ([A-Za-z0-9+/=]+)")


class CheckpointError(ValueError):
    """A checkpoint or key that cannot be used; the message says what is wrong and what to do."""


class Checkpoint(msgspec.Struct, frozen=True):
    origin: str
    position: int
    digest: bytes
    time: str  # ISO 8601 UTC, when it was signed


def check_origin(origin: str) -> str:
    if not _ORIGIN.fullmatch(origin):
        raise CheckpointError(f"checkpoint origin {origin!r} must be 1 to 255 characters with no spaces or '+' "
                              "(set CHECKPOINT_ORIGIN, e.g. ledgerllm.example.com)")
    return origin


def key_id(origin: str, public: Ed25519PublicKey) -> bytes:
    return hashlib.sha256(origin.encode() + b"\n" + _ALG_ED25519 + public.public_bytes_raw()).digest()[:4]


def verifier_key(origin: str, public: Ed25519PublicKey) -> str:
    """The public half, as text to hand to whoever verifies checkpoints."""
    encoded = base64.b64encode(_ALG_ED25519 + public.public_bytes_raw()).decode()
    return f"{check_origin(origin)}+{key_id(origin, public).hex()}+{encoded}"


def parse_verifier_key(text: str) -> tuple[str, Ed25519PublicKey]:
    """(origin, public key) from `verifier_key`'s text."""
    parts = text.strip().split("+", 2)  # the base64 part may hold "+" itself
    if len(parts) != 3:
        raise CheckpointError("a verifier key looks like ORIGIN+KEYID+BASE64 (print it with "
                              "`ledgerllm audit public-key`)")
    origin, kid, encoded = parts
    try:
        raw = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise CheckpointError("the verifier key's last part is not base64") from None
    if len(raw) != 33 or raw[:1] != _ALG_ED25519:
        raise CheckpointError("the verifier key is not an Ed25519 key")
    public = Ed25519PublicKey.from_public_bytes(raw[1:])
    if key_id(origin, public).hex() != kid.lower():
        raise CheckpointError("the verifier key's id does not match its origin and key")
    return check_origin(origin), public


def load_signing_key(path: Path, *, create: bool) -> Ed25519PrivateKey:
    """The Ed25519 private key kept in `path` (32 raw bytes as hex, file mode 0600); made there
    on first use when `create`."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        if not create:
            raise CheckpointError(f"no checkpoint key at {path}: run `ledgerllm audit checkpoint` once to make one, "
                                  "or pass the verifier key with --key") from None
        key = Ed25519PrivateKey.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, key.private_bytes_raw().hex().encode() + b"\n")  # 0600
        return key
    return signing_key_from_text(text, str(path))


def signing_key_from_text(text: str, where: str) -> Ed25519PrivateKey:
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise CheckpointError(f"the checkpoint key in {where} must be 64 hexadecimal characters "
                              "(an Ed25519 private key); remove it to have a new one made")
    return Ed25519PrivateKey.from_private_bytes(raw)


def _body(cp: Checkpoint) -> str:
    return f"{cp.origin}\n{cp.position}\n{base64.b64encode(cp.digest).decode()}\ntime {cp.time}\n"


def sign(cp: Checkpoint, key: Ed25519PrivateKey) -> str:
    body = _body(msgspec.structs.replace(cp, origin=check_origin(cp.origin)))
    signature = key_id(cp.origin, key.public_key()) + key.sign(body.encode())
    return f"{body}\n\u2014 {cp.origin} {base64.b64encode(signature).decode()}\n"


def read(note: str, origin: str, public: Ed25519PublicKey) -> Checkpoint:
    """The checkpoint in `note`, after checking it carries a valid signature by `public` for
    `origin`; CheckpointError says what is wrong."""
    body, sep, signatures = note.partition("\n\n")
    if not sep:
        raise CheckpointError("not a signed checkpoint (no blank line before the signature)")
    body += "\n"
    lines = body.split("\n")[:-1]
    if len(lines) < 3:
        raise CheckpointError("not a checkpoint: it needs an origin, a position and a digest")
    wanted = key_id(origin, public)
    signed = False
    for line in signatures.splitlines():
        match = _SIGNATURE_LINE.fullmatch(line)
        if not match or match.group(1) != origin:
            continue
        raw = base64.b64decode(match.group(2))
        if raw[:4] != wanted:
            continue
        try:
            public.verify(raw[4:], body.encode())
        except InvalidSignature:
            raise CheckpointError("the checkpoint's signature is not valid: the note was changed after it "
                                  "was signed") from None
        signed = True
    if not signed:
        raise CheckpointError(f"the checkpoint carries no signature by this key for origin {origin!r}")
    if lines[0] != origin:
        raise CheckpointError(f"the checkpoint is for origin {lines[0]!r}, not {origin!r}")
    try:
        position = int(lines[1])
        digest = base64.b64decode(lines[2], validate=True)
    except (ValueError, binascii.Error):
        raise CheckpointError("the checkpoint's position or digest cannot be read") from None
    if position < 0 or len(digest) != 32:
        raise CheckpointError("the checkpoint's position or digest cannot be read")
    when = next((line[5:] for line in lines[3:] if line.startswith("time ")), "")
    return Checkpoint(origin=origin, position=position, digest=digest, time=when)


def write_note(path: Path, note: str) -> None:
    """Write the note all at once; it holds nothing secret, so anyone may read it."""
    atomic_write(path, note.encode())
    os.chmod(path, 0o644)
