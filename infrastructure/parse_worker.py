"""A parse worker: a clean interpreter that turns uploaded files into text, under caps.

parse_pool.py starts it as `python -I -c ...` with a `WorkerConfig` as its one argument and an
environment holding no secrets. It imports the parsers and nothing else of ours (no torch, no
litellm, no embedding model), caps its own address space (RLIMIT_AS) before it reads a byte,
and before each parse allows itself `cpu_seconds` more CPU time (RLIMIT_CPU: the kernel kills
it with SIGXCPU past that). It lowers its priority so that the server answers first.

Protocol, on stdin/stdout: frames of a 4-byte big-endian length and a msgpack payload. The
worker sends `READY` once warm, then answers each `ParseRequest` with a `Parsed` or `Refused`
reply; a reply with `retire` set is its last (it then exits, and the pool starts another).
"""

from __future__ import annotations

import os
import struct
import sys
from typing import BinaryIO

import msgspec

from infrastructure import parsers
from infrastructure.parse_limits import MIB, ParseLimits, refusal
from infrastructure.parsers import ParsedDocument

READY = b"ready"
NICENESS = 5  # below the server's priority: a parse waits, a ping does not
_HEADER = struct.Struct(">I")


class WorkerConfig(msgspec.Struct, frozen=True, kw_only=True):
    limits: ParseLimits
    memory_mb: int
    cpu_seconds: int


class ParseRequest(msgspec.Struct, frozen=True):
    filename: str
    data: bytes
    content_type: str | None = None


class Parsed(msgspec.Struct, frozen=True, tag="parsed"):
    document: ParsedDocument
    retire: bool = False


class Refused(msgspec.Struct, frozen=True, tag="refused"):
    kind: str  # "unsupported", "unsafe", "unparsable" or "limit"
    message: str
    retire: bool = False


Reply = Parsed | Refused


def write_frame(stream: BinaryIO, payload: bytes) -> None:
    stream.write(_HEADER.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def _read_frame(stream: BinaryIO) -> bytes | None:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None  # the pool closed our stdin: time to go
    (size,) = _HEADER.unpack(header)
    payload = stream.read(size)
    return payload if len(payload) == size else None


def main() -> None:
    config = msgspec.json.decode(sys.argv[1], type=WorkerConfig)
    _cap_memory(config.memory_mb)
    requests, replies = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must never corrupt the protocol
    _quiet()
    import docx  # noqa: F401 - warm: the first upload must not pay for these imports
    import pypdf  # noqa: F401

    os.nice(NICENESS)
    write_frame(replies, READY)
    encoder = msgspec.msgpack.Encoder()
    decoder = msgspec.msgpack.Decoder(ParseRequest)
    while (frame := _read_frame(requests)) is not None:
        request = decoder.decode(frame)
        del frame
        _allow_cpu(config.cpu_seconds)
        reply = _handle(request, config)
        del request
        try:
            payload = encoder.encode(reply)
        except MemoryError:
            payload = encoder.encode(_out_of_memory("the file", config))
        write_frame(replies, payload)
        if reply.retire:
            return


_KINDS = ((parsers.UnsupportedFileType, "unsupported"), (parsers.UnsafeName, "unsafe"),
          (parsers.ParseLimitExceeded, "limit"), (parsers.UnparsableFile, "unparsable"))


def _handle(request: ParseRequest, config: WorkerConfig) -> Reply:
    try:
        doc = parsers.parse(request.filename, request.data, request.content_type, limits=config.limits)
        return Parsed(doc, retire=_grown(config))
    except MemoryError:
        return _out_of_memory(request.filename, config)
    except ValueError as e:
        kind = next((kind for cls, kind in _KINDS if isinstance(e, cls)), None)
        if kind is None:
            return Refused("unparsable", f"{request.filename!r} could not be parsed ({type(e).__name__})", retire=True)
        return Refused(kind, str(e), retire=_grown(config))
    except Exception as e:  # noqa: BLE001 - a parser bug: refuse the file, start afresh
        return Refused("unparsable", f"{request.filename!r} could not be parsed ({type(e).__name__})", retire=True)


def _out_of_memory(filename: str, config: WorkerConfig) -> Refused:
    message = str(refusal(filename, f"needs more than {config.memory_mb} MB of memory to parse",
                          "PARSE_MAX_MEMORY_MB", config.memory_mb, " MB"))
    return Refused("limit", message, retire=True)


def _cap_memory(memory_mb: int) -> None:
    import resource

    cap = memory_mb * MIB
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))  # hard too: no parser can lift it
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a worker killed by a cap leaves no core file


def _allow_cpu(seconds: int) -> None:
    """RLIMIT_CPU counts the process's whole life: allow `seconds` more than used so far."""
    import resource
    import signal

    signal.signal(signal.SIGXCPU, signal.SIG_DFL)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(usage.ru_utime + usage.ru_stime) + 1 + seconds
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]  # unlimited, unless the operator set `ulimit -t`
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))


def _grown(config: WorkerConfig) -> bool:
    """Past half its memory cap (a fragmented heap), a worker retires rather than fail the next file."""
    try:
        with open("/proc/self/statm") as statm:
            size = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return False
    return size > config.memory_mb * MIB // 2


def _quiet() -> None:
    """Hostile files make pypdf and python-docx warn a lot; the refusal says what matters."""
    import logging
    import warnings

    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)


if __name__ == "__main__":
    main()
