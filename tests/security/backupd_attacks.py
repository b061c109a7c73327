#!/usr/bin/env python3
"""Attacks on a real backupd on 127.0.0.1 (method and figures: tests/bench/README.md, section 6).

Starts BACKUPD (argv[1]) with a throw-away config whose shutdown_command touches a marker file,
then runs each attack from 127.0.0.2 (the "attacker") while a pinger on 127.0.0.1 (the "hozo
machine") calls GET /ping every 100 ms. For each attack it records backupd's RSS before, the
peak while it ran (sampled every 10 ms from /proc/PID/status) and after, and the slowest ping.
An attack passes when: RSS grew by at most 8 MiB (peak - before), every ping answered within
1 s, the shutdown command never ran, and the attack-specific expectation held. Prints a Markdown
table; exits 1 if any attack failed. Every loop is bounded in count and in time.
"""
import gzip
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib

MIB = 1 << 20
RSS_LIMIT_KIB = 8 * 1024
PING_LIMIT_S = 1.0
ATTACKER = "127.0.0.2"
HOZO = "127.0.0.1"
SPOOF = "203.0.113.66"  # TEST-NET-3, only ever written into headers


def now():
    return time.monotonic()


class Backupd:
    def __init__(self, binary, work):
        self.work = work
        self.token = "sec-test-token-" + os.urandom(12).hex()
        self.marker = os.path.join(work, "SHUTDOWN-RAN")
        tok = os.path.join(work, "token")
        with open(tok, "w") as f:
            f.write(self.token + "\n")
        os.chmod(tok, 0o600)
        self.config = os.path.join(work, "backupd.yaml")
        with open(self.config, "w") as f:
            f.write(f"listen: 127.0.0.1:0\ntoken_file: {tok}\n"
                    f"shutdown_command: [/usr/bin/touch, {self.marker}]\nshutdown_delay: 0s\n"
                    "read_timeout: 2s\nrequest_timeout: 4s\n")
        self.log_path = os.path.join(work, "backupd.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([binary, "-c", self.config, "-v"], stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL)
        self.port = None
        deadline = now() + 10
        while now() < deadline and self.port is None:
            if self.proc.poll() is not None:
                raise SystemExit(f"backupd exited with {self.proc.returncode}: {open(self.log_path).read()}")
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", open(self.log_path).read())
            if m:
                self.port = int(m.group(1))
            else:
                time.sleep(0.05)
        if self.port is None:
            raise SystemExit("backupd did not start: " + open(self.log_path).read())

    def rss_kib(self):
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return -1

    def log_text(self):
        self.log.flush()
        return open(self.log_path, errors="replace").read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def connect(port, source=ATTACKER, timeout=5.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def read_answer(s, limit_s=5.0, max_bytes=1 << 20):
    """Everything the server sends until it closes, `limit_s` passes or max_bytes arrive."""
    data = b""
    end = now() + limit_s
    while now() < end and len(data) < max_bytes:
        s.settimeout(max(0.01, end - now()))
        try:
            chunk = s.recv(65536)
        except (socket.timeout, ConnectionError, OSError):
            break
        if not chunk:
            break
        data += chunk
    return data


def status_of(data):
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return int(m.group(1)) if m else 0


def exchange(port, raw, source=ATTACKER, limit_s=5.0):
    try:
        s = connect(port, source)
    except OSError as e:
        return b"", f"connect: {e}"
    try:
        s.sendall(raw)
    except OSError:
        pass
    data = read_answer(s, limit_s)
    s.close()
    return data, ""


def send_until_closed(port, head, chunks, max_bytes, limit_s):
    """Sends head, then chunks() pieces until the server stops reading, max_bytes or limit_s."""
    sent = 0
    s = connect(port)
    start = now()
    answer = b""
    try:
        s.sendall(head)
        sent += len(head)
        s.settimeout(2.0)
        for piece in chunks():
            if sent >= max_bytes or now() - start > limit_s:
                break
            try:
                s.sendall(piece)
            except socket.timeout:
                break  # the server stopped reading: its window is full
            sent += len(piece)
    except (BrokenPipeError, ConnectionResetError, OSError):
        pass
    answer = read_answer(s, 3.0)
    s.close()
    return sent, answer, now() - start


class Pinger:
    """GET /ping from the hozo address every 100 ms; records each latency (timeout = failure)."""

    def __init__(self, port):
        self.port = port
        self.latencies = []
        self.failures = 0
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def one(self):
        t0 = now()
        try:
            data, err = exchange(self.port, b"GET /ping HTTP/1.1\r\nHost: hozo\r\nConnection: close\r\n\r\n",
                                 source=HOZO, limit_s=PING_LIMIT_S * 3)
            ok = status_of(data) == 200
        except OSError:
            ok = False
        self.latencies.append(now() - t0)
        if not ok:
            self.failures += 1

    def run(self):
        end = now() + 120
        while not self.stop_flag.is_set() and now() < end:
            self.one()
            self.stop_flag.wait(0.1)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        self.thread.join(10)
        self.one()  # and one after the attack


class RssSampler:
    def __init__(self, daemon):
        self.daemon = daemon
        self.peak = daemon.rss_kib()
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        end = now() + 180
        while not self.stop_flag.is_set() and now() < end:
            self.peak = max(self.peak, self.daemon.rss_kib())
            self.stop_flag.wait(0.01)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        self.thread.join(5)
        self.peak = max(self.peak, self.daemon.rss_kib())


# ---- the attacks: each returns (passed, what happened) ------------------------------------------

def attack_long_header(d):
    head = b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Long: "
    piece = b"a" * 65536
    sent, answer, secs = send_until_closed(d.port, head, lambda: iter([piece] * 1024), 64 * MIB, 30)
    st = status_of(answer)
    return st in (400, 413, 414, 431) or st == 0, f"{st or 'closed'} after {sent // 1024} KiB sent of 64 MiB ({secs:.1f} s)"


def attack_many_headers(d):
    head = b"GET /ping HTTP/1.1\r\nHost: x\r\n"

    def lines():
        for i in range(0, 100_000, 1000):
            yield b"".join(b"X-H%d: v\r\n" % j for j in range(i, i + 1000))
        yield b"\r\n"

    sent, answer, secs = send_until_closed(d.port, head, lines, 16 * MIB, 30)
    st = status_of(answer)
    return st in (400, 431) or st == 0, f"{st or 'closed'} after {sent // 1024} KiB of 100k header lines ({secs:.1f} s)"


def chunked_body(d, token):
    auth = f"Authorization: Bearer {d.token}\r\n".encode() if token else b""
    head = b"POST /shutdown?force=1 HTTP/1.1\r\nHost: x\r\n" + auth + b"Transfer-Encoding: chunked\r\n\r\n"
    piece = b"10000\r\n" + b"z" * 65536 + b"\r\n"
    sent, answer, secs = send_until_closed(d.port, head, lambda: iter([piece] * 3200), 200 * MIB, 30)
    st = status_of(answer)
    want = (401,) if not token else (413, 0)
    return st in want, f"{st or 'closed'} after {sent // 1024} KiB sent of 200 MiB ({secs:.1f} s)"


def attack_chunked_no_token(d):
    return chunked_body(d, False)


def attack_chunked_token(d):
    return chunked_body(d, True)


def gzip_bomb():
    """1 GiB of zeros as gzip: 1024 members of 1 MiB each (concatenated members are one stream)."""
    member = gzip.compress(bytes(MIB), 9)
    bomb = member * 1024
    assert len(zlib.decompressobj(31).decompress(member)) == MIB
    return bomb


def attack_gzip_bomb(d):
    bomb = gzip_bomb()
    head = (b"POST /shutdown?force=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + d.token.encode() +
            b"\r\nContent-Encoding: gzip\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(bomb))
    sent, answer, secs = send_until_closed(d.port, head, lambda: (bomb[i:i + 65536] for i in range(0, len(bomb), 65536)),
                                           len(bomb) + len(head), 30)
    st = status_of(answer)
    # Also chunked (no Content-Length to refuse it by): refused on the header alone.
    head2 = (b"POST /shutdown?force=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + d.token.encode() +
             b"\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n")
    sent2, answer2, _ = send_until_closed(
        d.port, head2, lambda: (b"%x\r\n" % len(bomb[i:i + 65536]) + bomb[i:i + 65536] + b"\r\n"
                                for i in range(0, len(bomb), 65536)), len(bomb) * 2, 30)
    st2 = status_of(answer2)
    ok = st in (413, 415) and st2 in (413, 415, 0)
    return ok, f"{st} (Content-Length {len(bomb) // 1024} KiB of gzip = 1 GiB), chunked: {st2 or 'closed'}"


def attack_slowloris(d):
    n = 50
    results = [None] * n
    start = now()

    def slow(i):
        try:
            s = connect(d.port, timeout=1.0)
        except OSError:
            results[i] = ("refused", 0.0)
            return
        t0 = now()
        request = b"GET /ping HTTP/1.1\r\nHost: slow\r\nX-Pad: " + b"a" * 200
        outcome = "held 20 s"
        for k in range(len(request)):
            if now() - t0 > 20:
                break
            try:
                s.send(request[k:k + 1])
                s.settimeout(0.5)
                if s.recv(1) == b"":
                    outcome = "cut"
                    break
            except socket.timeout:
                continue
            except OSError:
                outcome = "cut"
                break
        if outcome == "cut" and now() - t0 < 0.5:
            outcome = "refused"  # accepted and closed at once: the per-address limit
        results[i] = (outcome, now() - t0)
        s.close()

    threads = [threading.Thread(target=slow, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    cut = [r[1] for r in results if r and r[0] == "cut"]
    refused = sum(1 for r in results if r and r[0] == "refused")
    held = sum(1 for r in results if r and r[0].startswith("held"))
    longest = max(cut) if cut else 0.0
    return held == 0, (f"{refused} closed at once (8 per address), {len(cut)} cut at the deadline (longest "
                       f"{longest:.1f} s; request_timeout 4 s), "
                       f"{held} still open after 20 s; {now() - start:.1f} s")


def attack_rapid(d):
    counts = {}
    lock = threading.Lock()
    auth_bad = b"Authorization: Bearer wrong-token-0123456789\r\n"
    reqs = [b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b"GET /status HTTP/1.1\r\nHost: x\r\n" + auth_bad + b"Connection: close\r\n\r\n",
            b"POST /shutdown HTTP/1.1\r\nHost: x\r\n" + auth_bad + b"Content-Length: 0\r\nConnection: close\r\n\r\n",
            b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]
    start = now()

    def worker(w):
        for i in range(250):
            if now() - start > 60:
                break
            data, _ = exchange(d.port, reqs[(w + i) % len(reqs)], limit_s=3)
            with lock:
                st = status_of(data)
                counts[st] = counts.get(st, 0) + 1

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    total = sum(counts.values())
    answered = sum(v for k, v in counts.items() if k in (200, 401, 404))
    summary = ", ".join(f"{k or 'none'}: {v}" for k, v in sorted(counts.items()))
    return total == 1000 and answered == 1000, f"{total} requests in {now() - start:.1f} s ({summary})"


def attack_smuggling(d):
    tok = d.token.encode()
    cases = {
        # an encoded CRLF in a header value must never become a header (no percent-decoding)
        "encoded CRLF + token in a header value": b"GET /status HTTP/1.1\r\nHost: x\r\nX-Foo: bar%0d%0aAuthorization:%20Bearer%20" + tok + b"\r\nConnection: close\r\n\r\n",
        # a bare CR is not a line end
        "bare CR before Authorization": b"GET /status HTTP/1.1\r\nHost: x\r\nX-Foo: bar\rAuthorization: Bearer " + tok + b"\r\nConnection: close\r\n\r\n",
        # obs-fold continuation must not start a header
        "obs-fold Authorization": b"GET /status HTTP/1.1\r\nHost: x\r\nX-Foo: bar\r\n Authorization: Bearer " + tok + b"\r\nConnection: close\r\n\r\n",
        # CL.TE: the second request rides in the first one's body
        "CL+TE smuggled POST /shutdown": b"POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nPOST /shutdown?force=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        # TE.CL the other way round
        "TE+CL smuggled POST /shutdown": b"POST /ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nPOST /shutdown?force=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\nx=1\r\n0\r\n\r\n",
        "two Content-Length": b"POST /shutdown HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 40\r\n\r\n" + b"x" * 40,
        "CRLF in the request target": b"GET /ping%0d%0aAuthorization:%20Bearer%20" + tok + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "raw CR in the request target": b"GET /status\rAuthorization: Bearer " + tok + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "NUL in a header": b"GET /status HTTP/1.1\r\nHost: x\r\nX-A: a\x00\r\nAuthorization: Bearer wrong\r\nConnection: close\r\n\r\n",
        "pipelined after a 401": b"POST /shutdown HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\nPOST /shutdown?force=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    }
    bad = []
    seen = []
    for name, raw in cases.items():
        data, _ = exchange(d.port, raw, limit_s=3)
        statuses = [int(x) for x in re.findall(rb"HTTP/1\.[01] (\d{3})", data)]
        seen.append(f"{'/'.join(map(str, statuses)) or 'closed'}")
        # /status or /shutdown must never be answered 2xx
        if re.search(rb"HTTP/1\.[01] 20[02]", data) and (b'"pools"' in data or b"shutdown" in data):
            bad.append(name)
    ok = not bad and not os.path.exists(d.marker)
    return ok, f"{len(cases)} cases, answers {' '.join(seen)}" + (f"; PRIVILEGED: {bad}" if bad else "")


def attack_spoofed_peer(d):
    headers = (f"REMOTE_ADDR: {SPOOF}\r\nRemote-Addr: {SPOOF}\r\nX-Forwarded-For: {SPOOF}\r\n"
               f"X-Real-IP: {SPOOF}\r\nForwarded: for={SPOOF}\r\nClient-IP: {SPOOF}\r\n").encode()
    mark = len(d.log_text())
    for raw in (b"POST /shutdown HTTP/1.1\r\nHost: x\r\n" + headers + b"Content-Length: 0\r\nConnection: close\r\n\r\n",
                b"GET /status HTTP/1.1\r\nHost: x\r\n" + headers + b"Authorization: Bearer " + d.token.encode() +
                b"\r\nConnection: close\r\n\r\n",
                b"GET /nope HTTP/1.1\r\nHost: x\r\n" + headers + b"Connection: close\r\n\r\n"):
        exchange(d.port, raw, limit_s=3)
    time.sleep(0.3)
    log = d.log_text()
    new = log[mark:]
    lines = [l for l in new.splitlines() if " from " in l and ("/shutdown" in l or "/status" in l or "/nope" in l)]
    from_attacker = sum(1 for l in lines if l.rstrip().split(" from ")[1].startswith(ATTACKER))
    ok = SPOOF not in log and len(lines) >= 3 and from_attacker == len(lines)
    return ok, f"{len(lines)} log lines, {from_attacker} say 'from {ATTACKER}'; {SPOOF} in the log: {SPOOF in log}"


def attack_parallel_mix(d):
    """The per-connection bounds hold together: 8 attackers at once (the per-address limit)."""
    kinds = [attack_long_header, attack_many_headers, attack_chunked_token, attack_chunked_no_token] * 2
    results = [None] * len(kinds)

    def run(i):
        try:
            results[i] = kinds[i](d)
        except Exception as e:  # noqa: BLE001 (reported as a failed part)
            results[i] = (False, f"{type(e).__name__}: {e}")

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(kinds))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    passed = sum(1 for r in results if r and r[0])
    return passed == len(kinds), f"{passed}/{len(kinds)} refused as when alone (2 each of the four above, at once)"


ATTACKS = [
    ("one 64 MiB header line", attack_long_header),
    ("100k headers", attack_many_headers),
    ("chunked 200 MiB body, no token", attack_chunked_no_token),
    ("chunked 200 MiB body, with token", attack_chunked_token),
    ("the four above, 8 connections at once", attack_parallel_mix),
    ("1 GiB gzip bomb, with token", attack_gzip_bomb),
    ("50 parallel slowloris connections", attack_slowloris),
    ("1,000 rapid requests", attack_rapid),
    ("header CRLF smuggling", attack_smuggling),
    ("spoofed REMOTE_ADDR / X-Forwarded-For", attack_spoofed_peer),
]


def main():
    if len(sys.argv) < 2:
        raise SystemExit("usage: backupd_attacks.py BACKUPD [NAME-FILTER]")
    binary = sys.argv[1]
    only = sys.argv[2] if len(sys.argv) > 2 else ""
    try:
        socket.socket().bind((ATTACKER, 0))
    except OSError as e:
        print(f"SKIP: cannot bind {ATTACKER} ({e})")
        return 77
    work = tempfile.mkdtemp(prefix="hozo-backupd-sec.")
    d = Backupd(binary, work)
    rows = []
    failed = 0
    start_rss = d.rss_kib()
    print(f"backupd pid {d.proc.pid} on 127.0.0.1:{d.port}; RSS at start {start_rss} KiB; work dir {work}", file=sys.stderr)
    try:
        for name, attack in ATTACKS:
            if only and only not in name:
                continue
            time.sleep(0.5)
            before = d.rss_kib()
            t0 = now()
            with Pinger(d.port) as pinger, RssSampler(d) as rss:
                try:
                    passed, what = attack(d)
                except Exception as e:  # a broken attack is a failed row, not a crash
                    passed, what = False, f"attack raised {type(e).__name__}: {e}"
            time.sleep(0.5)
            after = d.rss_kib()
            growth = rss.peak - before
            worst = max(pinger.latencies) if pinger.latencies else 99.0
            alive = d.proc.poll() is None
            shut = os.path.exists(d.marker)
            ok = passed and alive and not shut and growth <= RSS_LIMIT_KIB and worst <= PING_LIMIT_S and pinger.failures == 0
            failed += 0 if ok else 1
            rows.append((name, what, before, rss.peak, after, growth, worst, len(pinger.latencies), pinger.failures,
                         shut, ok, now() - t0))
            print(f"{'ok  ' if ok else 'FAIL'} {name}: {what}; RSS {before}->{rss.peak}->{after} KiB; "
                  f"slowest ping {worst * 1000:.0f} ms of {len(pinger.latencies)}"
                  f"{'' if alive else '; backupd DIED'}{'; SHUTDOWN RAN' if shut else ''}", file=sys.stderr)
        # Positive control: the marker mechanism works (a real, authenticated shutdown runs it).
        data, _ = exchange(d.port, b"POST /shutdown?force=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                           d.token.encode() + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", source=HOZO)
        end = now() + 5
        while now() < end and not os.path.exists(d.marker):
            time.sleep(0.05)
        control = status_of(data) == 202 and os.path.exists(d.marker)
        if not control:
            failed += 1
    finally:
        rc = d.stop()
    final_note = f"backupd exited {rc} on SIGTERM"
    print()
    print(f"backupd security suite — {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, {os.uname().release}, "
          f"{os.cpu_count()} CPU(s); limits: RSS growth <= 8 MiB, every /ping <= 1 s, no shutdown")
    print()
    print("| attack | outcome | RSS before | RSS peak | RSS after | growth | slowest /ping (n) | shutdown ran | result |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (name, what, before, peak, after, growth, worst, n, fails, shut, ok, secs) in rows:
        print(f"| {name} | {what} | {before / 1024:.1f} MiB | {peak / 1024:.1f} MiB | {after / 1024:.1f} MiB | "
              f"{growth / 1024:+.1f} MiB | {worst * 1000:.0f} ms ({n}{f', {fails} failed' if fails else ''}) | "
              f"{'YES' if shut else 'no'} | {'pass' if ok else 'FAIL'} |")
    print()
    print(f"RSS at start {start_rss / 1024:.1f} MiB, at the end {rows[-1][4] / 1024:.1f} MiB; "
          f"positive control (authenticated POST /shutdown ran the command): {'yes' if control else 'NO'}; {final_note}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
