"""Benchmark: throughput of an authenticated request (/api/v1/auth) against the no-auth floor (/api/ping).

Starts `ledgerllm serve` on a temp DATA_DIR and a bare Litestar app answering the same JSON, issues
an API key with the CLI, and drives the three endpoints with wrk in cycles (bare, ping, auth, then
backwards; `--pin` puts wrk on one CPU and the servers on the others). Aim: auth/ping requests/s
ratio >= 0.7, i.e. API-key authentication (header parse, sha256, cache lookup, principal) costs
at most ~30% of throughput; ping / bare app >= 0.8 with p99 at most 3x the bare app's.

Run from the repo root:  .venv/bin/python bench/auth_throughput.py [--duration 10] [--connections 32]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import free_port, http_status, stop, wait_ready

AIM = 0.7
PING_AIM = 0.8  # ledgerllm's /api/ping against a bare Litestar app's, same run
P99_AIM = 3.0  # ledgerllm's ping p99 at most this many times the bare app's
# ABBA order, so drift (thermal, cache expiry, other load) hits every endpoint equally
CYCLE = ["bare", "ping", "auth"]  # run forwards, then backwards, then forwards...
PATHS = {"bare": "/api/ping", "ping": "/api/ping", "auth": "/api/v1/auth"}
_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}



def to_ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", value)
    if not m:
        raise ValueError(f"unparsable wrk latency {value!r}")
    return float(m[1]) * _UNITS_MS[m[2]]


def pinned(args: argparse.Namespace, wrk: bool) -> list[str]:
    """taskset prefix (with --pin): wrk on the last CPU, the servers on the rest."""
    cpus = os.cpu_count() or 1
    if not args.pin or cpus < 2 or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", str(cpus - 1) if wrk else f"0-{cpus - 2}"]


def run_wrk(url: str, args: argparse.Namespace, duration: int, headers: list[str]) -> dict[str, float]:
    cmd = [*pinned(args, wrk=True), "wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{duration}s", "--latency", *headers, url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    if "Non-2xx or 3xx responses" in out:
        sys.exit(f"wrk saw error responses from {url}; results would be meaningless:\n{out}")
    if "Socket errors" in out:
        print(f"warning: {url}: {re.search(r'Socket errors:.*', out)[0]}", file=sys.stderr)
    try:
        return {
            "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
            # "    Latency   1.23ms  ..." (thread stats: first column is the mean)
            "avg_ms": to_ms(re.search(r"^\s+Latency\s+(\S+)", out, re.M)[1]),
            "p99_ms": to_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M)[1]),
        }
    except (TypeError, ValueError) as err:  # TypeError: a regex did not match
        sys.exit(f"could not parse wrk output ({err}):\n{out}")



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1: wrk on one core, server on the other)")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--cycles", type=int, default=4,
                        help="measured cycles of bare/ping/auth, alternately forwards and backwards")
    parser.add_argument("--pin", action="store_true",
                        help="pin wrk to the last CPU and the servers to the others (taskset); on a 2-core VM "
                             "this lowered every rate ~10%% and did not steady them")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found; install it (apt-get install -y wrk)")
    ledgerllm = shutil.which("ledgerllm", path=str(Path(sys.executable).parent)) or shutil.which("ledgerllm")
    if not ledgerllm:
        sys.exit("ledgerllm console script not found; run with the project's venv python")

    # SIGTERM -> SystemExit, so the finally block below also runs when we are killed politely.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="ledgerllm-bench-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # LOG_LEVEL=WARNING: the per-request INFO access line would otherwise be part of what we measure.
    env = {**os.environ, "DATA_DIR": str(tmp / "data"), "LOG_LEVEL": "WARNING"}
    log = tmp / "server.log"
    server = bare = None
    bare_port = free_port()
    bare_base = f"http://127.0.0.1:{bare_port}"
    try:
        with (tmp / "bare.log").open("w") as bare_log:
            bare = subprocess.Popen([*pinned(args, wrk=False), sys.executable, str(Path(__file__).with_name("bare_app.py")), str(bare_port)],
                                    stdout=bare_log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_ready(bare_base, bare, tmp / "bare.log")
        with log.open("w") as log_file:
            server = subprocess.Popen(
                [*pinned(args, wrk=False), ledgerllm, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers)],
                env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        # ready, not just answering: the embedder's background warm-up must not share the rounds
        wait_ready(base, server, log, timeout=180, path="/api/health/ready")
        key = subprocess.run([ledgerllm, "api-keys", "create", "--name", "bench"], env=env,
                             capture_output=True, text=True, check=True).stdout.strip()
        auth_header = ["-H", f"Authorization: Bearer {key}"]
        headers = {"bare": [], "ping": [], "auth": auth_header}
        bases = {"bare": bare_base, "ping": base, "auth": base}

        with_key = http_status(base + PATHS["auth"], {"Authorization": f"Bearer {key}"})
        without = http_status(base + PATHS["auth"])
        if (with_key, without) != (200, 403):
            sys.exit(f"/api/v1/auth sanity check failed: with key {with_key} (want 200), "
                     f"without {without} (want 403); server log:\n{log.read_text()}")

        load_before = os.getloadavg()
        for name in PATHS:  # warm-up, discarded
            run_wrk(bases[name] + PATHS[name], args, 2, headers[name])
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in PATHS}
        for cycle in range(args.cycles):
            for name in CYCLE if cycle % 2 == 0 else CYCLE[::-1]:
                runs[name].append(run_wrk(bases[name] + PATHS[name], args, args.duration, headers[name]))
        load_after = os.getloadavg()
        mean = {name: {k: sum(r[k] for r in rs) / len(rs) for k in rs[0]} for name, rs in runs.items()}

        print(f"machine: nproc={os.cpu_count()}  python={platform.python_version()}  {platform.platform()}")
        print(f"setup:   server workers={args.workers} (LOG_LEVEL=WARNING), wrk -t{args.threads} "
              f"-c{args.connections} -d{args.duration}s, {args.cycles} cycles of {'/'.join(CYCLE)} "
              f"(alternately reversed), mean per endpoint; {' '.join(pinned(args, True)) or 'not pinned'} for wrk")
        print()
        print(f"load:    1-min load average {load_before[0]:.2f} before, {load_after[0]:.2f} after "
              f"(on {os.cpu_count()} cores; above ~0.5 the figures are shared with other work)")
        print()
        labels = {"bare": "bare Litestar /api/ping", "ping": "ledgerllm /api/ping", "auth": "ledgerllm /api/v1/auth"}
        print(f"{'endpoint':<26}{'requests/s':>12}{'avg (ms)':>10}{'p99 (ms)':>10}   per-round req/s")
        for name in PATHS:
            m = mean[name]
            rounds = ", ".join(f"{r['rps']:.0f}" for r in runs[name])
            print(f"{labels[name]:<26}{m['rps']:>12.0f}{m['avg_ms']:>10.2f}{m['p99_ms']:>10.2f}   {rounds}")
        ratio = mean["auth"]["rps"] / mean["ping"]["rps"]
        floor = mean["ping"]["rps"] / mean["bare"]["rps"]
        p99 = mean["ping"]["p99_ms"] / mean["bare"]["p99_ms"]
        per_cycle = sorted(p["rps"] / b["rps"] for p, b in zip(runs["ping"], runs["bare"]))
        print()
        print(f"ping/bare per cycle: {', '.join(f'{r:.2f}' for r in per_cycle)} (median {statistics.median(per_cycle):.2f})")
        print(f"ratio ping/bare app: {floor:.2f}  (aim >= {PING_AIM}: {'met' if floor >= PING_AIM else 'NOT met'})")
        print(f"p99 ping / bare app: {p99:.2f}x  (aim <= {P99_AIM}x: {'met' if p99 <= P99_AIM else 'NOT met'})")
        print(f"ratio auth/ping:     {ratio:.2f}  (aim >= {AIM}: {'met' if ratio >= AIM else 'NOT met'})")
        print(f"re-run: .venv/bin/python bench/auth_throughput.py --duration {args.duration} "
              f"--connections {args.connections} --threads {args.threads} --workers {args.workers} --cycles {args.cycles}"
              f"{' --pin' if args.pin else ''}")
    except subprocess.CalledProcessError as err:
        sys.exit(f"command failed: {' '.join(map(str, err.cmd))}\n{err.stdout}{err.stderr}")
    except KeyboardInterrupt:
        sys.exit("interrupted")
    finally:
        for process in (server, bare):
            if process is not None:
                stop(process)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
