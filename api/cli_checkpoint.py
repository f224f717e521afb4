"""`ledgerllm audit checkpoint` and `ledgerllm audit public-key`: sign the chain's head so that a
copy kept elsewhere can later prove no event was removed (see infrastructure/checkpoints.py for
the format), and the verifier-side helper used by `audit verify --checkpoint`."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from api.cli_events import open_store
from api.progress import Progress, say

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

    from infrastructure.settings import Settings


def _explained(command: Callable[[argparse.Namespace], None]) -> Callable[[argparse.Namespace], None]:
    """Run `command`; a key or checkpoint that cannot be used ends it with the reason (exit 1)."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> None:
        from infrastructure.checkpoints import CheckpointError

        try:
            command(args)
        except CheckpointError as error:
            raise SystemExit(f"error: {error}") from None

    return run


def signing_key(settings: Settings, *, create: bool) -> Ed25519PrivateKey:
    from infrastructure.checkpoints import load_signing_key, signing_key_from_text

    if settings.checkpoint_key:
        return signing_key_from_text(settings.checkpoint_key, "CHECKPOINT_KEY")
    return load_signing_key(settings.checkpoint_key_file or settings.data_dir / "checkpoint.key", create=create)


def verifier(settings: Settings, given: str | None) -> tuple[str, Ed25519PublicKey]:
    """The key checkpoints are checked against: --key when given, else this store's own."""
    from infrastructure.checkpoints import check_origin, parse_verifier_key

    if given:
        text = Path(given).read_text() if Path(given).is_file() else given
        return parse_verifier_key(text)
    return check_origin(settings.checkpoint_origin), signing_key(settings, create=False).public_key()


@_explained
def cmd_audit_checkpoint(args: argparse.Namespace) -> None:
    from domain.timefmt import iso
    from infrastructure.chain import verify_chain
    from infrastructure.checkpoints import Checkpoint, check_origin, sign, write_note

    with open_store() as store:
        settings = store.settings
        origin = check_origin(settings.checkpoint_origin)
        key = signing_key(settings, create=True)
        head = store.recorder.max_notification_id() or 0
        progress = Progress("verifying the chain before signing it", head)
        report = verify_chain(store.recorder, progress=progress.add)
        progress.done()
    if not report.intact:
        first = report.problems[0]
        raise SystemExit(f"error: the chain is not intact ({report.problem_count} problem(s), the first at position "
                         f"{first.position}: {first.kind}); nothing signed. Run `ledgerllm audit verify` for details.")
    from datetime import datetime, timezone

    note = sign(Checkpoint(origin=origin, position=report.head_position, digest=report.head_digest,
                           time=iso(datetime.now(timezone.utc))), key)
    if args.out:
        write_note(Path(args.out), note)
        say(f"checkpoint of position {report.head_position} written to {args.out}")
    else:
        sys.stdout.write(note)
    say("Keep checkpoints away from this machine; `ledgerllm audit verify --checkpoint FILE` proves the chain "
        "still extends them. Verifier key (for other machines): `ledgerllm audit public-key`.")


@_explained
def cmd_audit_public_key(args: argparse.Namespace) -> None:
    from infrastructure.checkpoints import check_origin, verifier_key
    from infrastructure.settings import load_settings

    settings = load_settings()
    print(verifier_key(check_origin(settings.checkpoint_origin), signing_key(settings, create=True).public_key()))


def read_checkpoints(settings: Settings, files: list[str], key: str | None) -> list[tuple[str, int, bytes]]:
    """(file, position, digest) of each checkpoint, after checking its signature; exits with a
    message naming the file when one cannot be used."""
    from infrastructure.checkpoints import CheckpointError, read

    try:
        origin, public = verifier(settings, key)
    except CheckpointError as error:
        raise SystemExit(f"error: {error}") from None
    found = []
    for name in files:
        try:
            cp = read(Path(name).read_text(), origin, public)
        except FileNotFoundError:
            raise SystemExit(f"error: checkpoint {name} does not exist") from None
        except (CheckpointError, UnicodeDecodeError) as error:
            raise SystemExit(f"error: checkpoint {name}: {error}") from None
        found.append((name, cp.position, cp.digest))
    return found
