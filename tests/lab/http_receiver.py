#!/usr/bin/python3
"""Lab HTTP receiver (test fixture): records every request as one JSON line.

    http_receiver.py --listen ADDR --port PORT --log FILE [--status 200] [--status-file FILE]

Each line: {"time": unix, "method", "path", "query" (raw string), "args" (parsed, lists),
"headers" (dict), "body" (text if UTF-8, else null), "body_b64", "client"}.
The response status is --status, or the first number in --status-file when that file exists
(read on every request, so a test can flip it: `echo 500 > FILE`). An optional second number in
the file is a delay in seconds before answering (for timeout tests).
"""
import argparse
import base64
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOCK = threading.Lock()


def make_handler(a):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "hozo-lab-http/1"

        def log_message(self, fmt, *args):  # keep stderr quiet
            pass

        def handle_any(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n) if n > 0 else b""
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                body = self.read_chunked()
            url = urlsplit(self.path)
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            rec = {
                "time": time.time(),
                "method": self.command,
                "path": url.path,
                "query": url.query,
                "args": parse_qs(url.query, keep_blank_values=True),
                "headers": {k: v for k, v in self.headers.items()},
                "body": text,
                "body_b64": base64.b64encode(body).decode(),
                "client": f"{self.client_address[0]}:{self.client_address[1]}",
            }
            status, delay = a.status, 0.0
            if a.status_file and os.path.exists(a.status_file):
                try:
                    parts = open(a.status_file).read().split()
                    status = int(parts[0])
                    delay = float(parts[1]) if len(parts) > 1 else 0.0
                except (OSError, ValueError, IndexError):
                    pass
            rec["status"] = status
            with LOCK:
                with open(a.log, "a") as f:
                    f.write(json.dumps(rec) + "\n")
            if delay:
                time.sleep(delay)
            out = json.dumps({"ok": 200 <= status < 300, "status": status}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(out)

        def read_chunked(self):
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0] or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any

    return H


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--listen", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8025)
    p.add_argument("--log", required=True)
    p.add_argument("--status", type=int, default=200)
    p.add_argument("--status-file")
    a = p.parse_args()
    srv = ThreadingHTTPServer((a.listen, a.port), make_handler(a))
    srv.daemon_threads = True
    print(f"http_receiver listening on {a.listen}:{a.port}", file=sys.stderr, flush=True)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    srv.serve_forever()


if __name__ == "__main__":
    main()
