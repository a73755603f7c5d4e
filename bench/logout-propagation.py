#!/usr/bin/env python3
"""How fast a logout on one gate instance reaches another through Redis.

Starts a throwaway redis-server on a free port, the reference IdP in
`--stateless` mode (it accepts revocations but revokes nothing, like an IdP of
self-contained JWTs, so a refusal on the other instance can only come from
the shared feed), and two `postern serve` gate instances A and B sharing
that Redis. It mints N tokens, caches each on B, then for each token:

  1. POST /v1/session/logout on A (timed: the logout as its client sees it,
     including the upstream revocation call and the XADD);
  2. polls GET /v1/check on B over a kept-alive connection until it answers
     401 (timed from the moment A answered: the propagation).

The baseline, measured in the same run on the same connection, is one
GET /v1/check hit on B: propagation's p50 and p99 are reported as
multiples of the hit's (about 1x means B already refused at its first
poll).

Usage:
  cargo build --release -p postern-server --bins
  python3 bench/logout-propagation.py [--tokens 200] [--bin-dir DIR]

Needs redis-server on PATH. Every process it starts is killed on exit.
"""

import argparse
import http.client
import json
import os
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time


def first_line(child, timeout=30):
    """The first stdout line of child, or exit if none comes in time."""
    ready, _, _ = select.select([child.stdout], [], [], timeout)
    if not ready:
        sys.exit(f"no output from {child.args[0]} within {timeout} s")
    return child.stdout.readline().strip()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    def __init__(self):
        self.children = []

    def start(self, args, prefix):
        """Starts args; returns the URL its first stdout line announces."""
        child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.children.append(child)
        line = first_line(child)
        if not line.startswith(prefix + " "):
            sys.exit(f"{args[0]} did not start (first line: {line!r})")
        return line[len(prefix) + 1:]

    def redis(self, port):
        child = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.children.append(child)
        for _ in range(200):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(7) == b"+PONG\r\n":
                        return
            except OSError:
                time.sleep(0.025)
        sys.exit("redis-server did not answer")

    def stop(self):
        for child in self.children:
            child.kill()
        for child in self.children:
            child.wait()


class Client:
    """One kept-alive HTTP/1.1 connection to base (http://host:port)."""

    def __init__(self, base):
        host, port = base.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=10)

    def request(self, method, path, token=None, body=None):
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        return response.status, data


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=200, help="logouts to time [200]")
    parser.add_argument("--bin-dir", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/postern/target")), "release"),
        help="where postern and postern-demo-idp are [$CARGO_TARGET_DIR/release]")
    args = parser.parse_args()
    # A SIGTERM unwinds through `finally`, so the children are killed too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if shutil.which("redis-server") is None:
        sys.exit("redis-server not found (apt-get install redis-server)")
    for binary in ("postern", "postern-demo-idp"):
        if not os.path.exists(os.path.join(args.bin_dir, binary)):
            sys.exit(f"{binary} not in {args.bin_dir}: cargo build --release -p postern-server --bins")

    procs = Processes()
    work = tempfile.mkdtemp()
    try:
        redis_port = free_port()
        procs.redis(redis_port)
        idp = procs.start([os.path.join(args.bin_dir, "postern-demo-idp"), "--stateless"],
                          "postern-demo-idp listening on")
        gates = []
        # The key that authenticates the feed's entries: the same on both.
        feed_key = os.urandom(32).hex()
        for name in ("a", "b"):
            data = os.path.join(work, name)
            os.mkdir(data, 0o700)
            env = {k: v for k, v in os.environ.items() if not k.startswith("POSTERN_")}
            env["POSTERN_REDIS"] = f"redis://127.0.0.1:{redis_port}"
            env["POSTERN_REDIS_FEED_KEY"] = feed_key
            child = subprocess.Popen(
                [os.path.join(args.bin_dir, "postern"), "serve", "--listen", "127.0.0.1:0", "--data", data,
                 "--upstream-introspection", f"{idp}/oauth/introspect",
                 "--upstream-revocation", f"{idp}/oauth/revoke",
                 "--client-id", "demo", "--client-secret", "demo-secret"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
            procs.children.append(child)
            line = first_line(child)
            if not line.startswith("postern listening on "):
                sys.exit(f"postern did not start (first line: {line!r})")
            gates.append(line.removeprefix("postern listening on "))
        a, b = Client(gates[0]), Client(gates[1])
        admin = Client(idp)

        print(f"minting and caching {args.tokens} tokens on B", file=sys.stderr)
        tokens = []
        for i in range(args.tokens):
            _, body = admin.request("POST", "/admin/tokens", body=json.dumps(
                {"sub": f"user-{i}", "scope": "read", "expires_in": 900}))
            token = json.loads(body)["token"]
            for _ in range(2):
                status, _ = b.request("GET", "/v1/check", token)
                if status != 200:
                    sys.exit(f"B answered {status} for a fresh token")
            tokens.append(token)

        hits, logouts, propagation, polls = [], [], [], []
        for i, token in enumerate(tokens):
            start = time.perf_counter()
            status, _ = b.request("GET", "/v1/check", token)
            hits.append(time.perf_counter() - start)
            if status != 200:
                sys.exit(f"B answered {status} before the logout")
            start = time.perf_counter()
            status, _ = a.request("POST", "/v1/session/logout", token)
            answered = time.perf_counter()
            if status != 200:
                sys.exit(f"A answered {status} to the logout")
            logouts.append(answered - start)
            n = 0
            while True:
                n += 1
                status, _ = b.request("GET", "/v1/check", token)
                if status == 401:
                    break
                if time.perf_counter() - answered > 5:
                    sys.exit("B still accepted the token 5 s after the logout")
            propagation.append(time.perf_counter() - answered)
            polls.append(n)
            if (i + 1) % 50 == 0:
                print(f"  {i + 1}/{len(tokens)} logouts", file=sys.stderr)

        us = lambda s: f"{s * 1e6:,.0f} µs"
        hit50 = statistics.median(hits)
        print(f"\n== a logout on A, refused on B ({len(tokens)} tokens, redis-server on :{redis_port}) ==")
        print(f"baseline: one GET /v1/check hit on B   p50 {us(hit50)}   p99 {us(percentile(hits, 0.99))}")
        print(f"logout on A, as its client sees it      p50 {us(statistics.median(logouts))}   "
              f"p99 {us(percentile(logouts, 0.99))}")
        p50, p99 = statistics.median(propagation), percentile(propagation, 0.99)
        hit99 = percentile(hits, 0.99)
        print(f"from A's answer until B refuses         p50 {us(p50)} ({p50 / hit50:.1f}x the hit's)   "
              f"p99 {us(p99)} ({p99 / hit99:.1f}x the hit's)")
        print(f"polls of B until refused                p50 {statistics.median(polls):.0f}   "
              f"max {max(polls)}   (1 = refused at the first poll)")
    finally:
        procs.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
