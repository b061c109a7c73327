"""Lab SMTP receiver handler (test fixture) for Debian's python3-aiosmtpd.

Run (lab.sh does this in the orchestrator namespace):
    PYTHONPATH=tests/lab /usr/bin/python3 -m aiosmtpd -n -l ADDR:PORT -c smtp_receiver.LabHandler OUTDIR

Every accepted message is written as OUTDIR/NNNN.eml (the raw message as received) and one JSON line
is appended to OUTDIR/messages.jsonl: {"time", "n", "mail_from", "rcpt_tos", "peer", "eml",
"subject", "size"}. NNNN counts from 0001 per receiver start.
"""
import email
import email.policy
import json
import os
import threading
import time


class LabHandler:
    def __init__(self, outdir):
        self.outdir = outdir
        os.makedirs(outdir, exist_ok=True)
        self.lock = threading.Lock()
        self.n = len([f for f in os.listdir(outdir) if f.endswith(".eml")])

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 1:
            parser.error("smtp_receiver.LabHandler needs exactly one argument: the output directory")
        return cls(args[0])

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        with self.lock:
            self.n += 1
            n = self.n
        name = f"{n:04d}.eml"
        tmp = os.path.join(self.outdir, f".{name}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, os.path.join(self.outdir, name))
        try:
            subject = str(email.message_from_bytes(data, policy=email.policy.default).get("Subject", ""))
        except Exception:  # a malformed message is still recorded
            subject = None
        peer = session.peer
        rec = {
            "time": time.time(),
            "n": n,
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "peer": f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer),
            "eml": name,
            "subject": subject,
            "size": len(data),
        }
        with self.lock, open(os.path.join(self.outdir, "messages.jsonl"), "a") as f:
            f.write(json.dumps(rec) + "\n")
        return "250 OK (hozo lab)"
