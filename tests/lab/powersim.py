#!/usr/bin/python3
"""Power simulator for the Hōzō lab's backup box (a test fixture, not part of hozo).

Runs inside the box's network namespace. The box is "off" (no sshd) until a valid Wake-on-LAN
magic packet for its MAC arrives on UDP port 7 or 9 (bound to 0.0.0.0, broadcasts accepted).
After --boot-delay seconds it "boots": it runs --boot-script inside a fresh pid + mount namespace
(`unshare --pid --fork --mount-proc --mount --propagation slave`); that script sets up the box's
private mounts (fake shutdown/zfs commands) and execs a real OpenSSH sshd. When the sshd port
accepts connections the event `ssh_up` is logged.

`shutdown`/`poweroff`/`halt`/`reboot` run over SSH on the box are fakes that write a line to the
control FIFO; the simulator then kills the pid namespace (sshd and all sessions die).

Every event is one JSON line in --events: {"t": monotonic, "wall": unix time, "event": NAME, ...}.
Events: powersim_started, wol_received, packet_ignored, packet_invalid, boot_started, ssh_up,
sshd_died, boot_failed, poweroff, reboot, off, control, powersim_stopped.

Control FIFO commands (one per line): poweroff [CMD...], halt, reboot, poweron, crash.
"""

import argparse
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time

MAGIC_SYNC = b"\xff" * 6


def parse_mac(text):
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6:
        raise ValueError(f"bad MAC {text!r}")
    return bytes(int(p, 16) for p in parts)


def fmt_mac(raw):
    return ":".join(f"{b:02x}" for b in raw)


class Sim:
    def __init__(self, a):
        self.a = a
        self.mac = parse_mac(a.mac)
        self.password = bytes.fromhex(a.password.replace(":", "").replace("-", "")) if a.password else None
        if self.password is not None and len(self.password) != 6:
            sys.exit("powersim: --password must be 6 bytes (12 hex digits)")
        self.events = open(a.events, "a", buffering=1)
        self.state = "off"
        self.proc = None  # the unshare process of a running box
        self.boot_at = None  # monotonic time when the boot delay ends
        self.off_at = None  # monotonic time when a requested poweroff takes effect
        self.off_then_boot = False
        self.ssh_probe_deadline = None
        self.ignore_left = a.ignore_first
        self.running = True
        self.sockets = []
        for port in a.ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
            s.bind((a.listen, port))
            self.sockets.append(s)
        if not os.path.exists(a.control):
            os.mkfifo(a.control, 0o600)
        # O_RDWR keeps the FIFO open even with no writer, so reads never see EOF.
        self.ctl = os.open(a.control, os.O_RDWR | os.O_NONBLOCK)
        self.ctl_buf = b""

    # ---- logging -------------------------------------------------------------------------
    def log(self, event, **kw):
        rec = {"t": round(time.monotonic(), 6), "wall": round(time.time(), 6), "event": event}
        rec.update(kw)
        self.events.write(json.dumps(rec, sort_keys=False) + "\n")
        self.events.flush()

    def set_state(self, st):
        self.state = st
        tmp = self.a.state_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(st + "\n")
        os.replace(tmp, self.a.state_file)

    # ---- magic packets -------------------------------------------------------------------
    def classify(self, data):
        """Returns (ok, kind, details): kind is 'wake' | 'ignored' | 'invalid'."""
        n = len(data)
        if n not in (102, 108):
            return "invalid", {"reason": "length", "len": n}
        if data[:6] != MAGIC_SYNC:
            return "invalid", {"reason": "no_sync", "len": n}
        first = data[6:12]
        if any(data[6 + 6 * i: 12 + 6 * i] != first for i in range(16)):
            return "invalid", {"reason": "mac_repeat", "len": n}
        details = {"mac": fmt_mac(first), "len": n}
        if n == 108:
            details["password"] = data[102:108].hex()
        if first != self.mac:
            return "ignored", dict(details, reason="other_mac")
        if self.password is not None:
            if n != 108:
                return "ignored", dict(details, reason="password_missing")
            if data[102:108] != self.password:
                return "ignored", dict(details, reason="password_wrong")
        return "wake", details

    def on_packet(self, sock):
        try:
            data, (ip, port) = sock.recvfrom(4096)
        except OSError:
            return
        lport = sock.getsockname()[1]
        kind, d = self.classify(data)
        src = {"from": f"{ip}:{port}", "port": lport}
        if kind == "invalid":
            self.log("packet_invalid", **src, **d)
            return
        if kind == "ignored":
            self.log("packet_ignored", **src, **d)
            return
        if self.ignore_left > 0:
            self.ignore_left -= 1
            self.log("packet_ignored", **src, **d, reason="ignore_first", left=self.ignore_left)
            return
        self.log("wol_received", **src, **d, state=self.state)
        if self.state == "off" and self.off_at is None:
            self.schedule_boot()

    # ---- power ---------------------------------------------------------------------------
    def schedule_boot(self):
        if self.a.never_boot:
            self.log("boot_failed", reason="never_boot")
            return
        self.set_state("booting")
        self.boot_at = time.monotonic() + self.a.boot_delay
        self.log("boot_started", delay=self.a.boot_delay)

    def boot_now(self):
        self.boot_at = None
        log = open(self.a.sshd_log, "ab")
        cmd = ["unshare", "--pid", "--fork", "--kill-child=SIGKILL", "--mount-proc", "--mount",
               "--propagation", "slave", "--", "/bin/sh", self.a.boot_script]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     start_new_session=True)
        log.close()
        self.ssh_probe_deadline = time.monotonic() + self.a.ssh_timeout
        self.log("sshd_started", pid=self.proc.pid)

    def ns_init_pid(self):
        if self.proc is None:
            return None
        try:
            with open(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children") as f:
                kids = f.read().split()
            return int(kids[0]) if kids else None
        except (OSError, ValueError):
            return None

    def kill_box(self):
        """Kills the box's pid namespace (its init dies -> the kernel kills everything in it)."""
        if self.proc is None:
            return
        init = self.ns_init_pid()
        if init:
            try:
                os.kill(init, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.terminate()  # --kill-child=SIGKILL also takes the namespace down
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self.ssh_probe_deadline = None
        # Wait until the port is really closed, so "off" means unreachable.
        end = time.monotonic() + 5
        while time.monotonic() < end and self.port_open():
            time.sleep(0.02)

    def port_open(self):
        try:
            with socket.create_connection((self.a.ssh_addr, self.a.ssh_port), timeout=0.2):
                return True
        except OSError:
            return False

    def power_off(self, reason):
        self.off_at = None
        self.boot_at = None
        self.kill_box()
        self.set_state("off")
        self.log("off", reason=reason)
        if self.off_then_boot:
            self.off_then_boot = False
            self.schedule_boot()

    # ---- control FIFO --------------------------------------------------------------------
    def on_control(self):
        try:
            chunk = os.read(self.ctl, 4096)
        except BlockingIOError:
            return
        self.ctl_buf += chunk
        while b"\n" in self.ctl_buf:
            line, self.ctl_buf = self.ctl_buf.split(b"\n", 1)
            words = line.decode(errors="replace").split()
            if words:
                self.command(words)

    def command(self, words):
        verb, rest = words[0], " ".join(words[1:])
        if verb in ("poweroff", "halt", "shutdown"):
            if self.state == "off":
                self.log("control", cmd=verb, ignored="already off")
                return
            self.log("poweroff", cmd=rest or verb, delay=self.a.poweroff_delay)
            self.off_at = time.monotonic() + self.a.poweroff_delay
        elif verb == "reboot":
            self.log("reboot", cmd=rest or verb)
            self.off_then_boot = True
            self.off_at = time.monotonic() + self.a.poweroff_delay
        elif verb == "crash":
            self.log("control", cmd="crash")
            self.power_off("crash")
        elif verb == "poweron":
            self.log("control", cmd="poweron")
            if self.state == "off":
                self.schedule_boot()
        else:
            self.log("control", cmd=verb, ignored="unknown command")

    # ---- main loop -----------------------------------------------------------------------
    def run(self):
        self.set_state("off")
        self.log("powersim_started", mac=fmt_mac(self.mac), ports=self.a.ports,
                 boot_delay=self.a.boot_delay, ignore_first=self.a.ignore_first,
                 never_boot=self.a.never_boot, password=bool(self.password), pid=os.getpid())
        if self.a.start_on:
            self.set_state("booting")
            self.log("boot_started", delay=0.0, reason="start_on")
            self.boot_now()
        fds = self.sockets + [self.ctl]
        while self.running:
            now = time.monotonic()
            timeout = 0.5
            for t in (self.boot_at, self.off_at):
                if t is not None:
                    timeout = min(timeout, max(0.0, t - now))
            if self.ssh_probe_deadline is not None:
                timeout = min(timeout, 0.05)
            try:
                ready, _, _ = select.select(fds, [], [], timeout)
            except InterruptedError:
                continue
            for r in ready:
                if r is self.ctl:
                    self.on_control()
                else:
                    self.on_packet(r)
            now = time.monotonic()
            if self.boot_at is not None and now >= self.boot_at:
                self.boot_now()
            if self.off_at is not None and now >= self.off_at:
                self.power_off("requested")
            if self.ssh_probe_deadline is not None:
                if self.port_open():
                    self.ssh_probe_deadline = None
                    self.set_state("on")
                    self.log("ssh_up", addr=f"{self.a.ssh_addr}:{self.a.ssh_port}")
                elif now > self.ssh_probe_deadline:
                    self.ssh_probe_deadline = None
                    self.log("boot_failed", reason="sshd never accepted connections")
            if self.proc is not None and self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                self.ssh_probe_deadline = None
                self.set_state("off")
                self.log("sshd_died", rc=rc)
        self.shutdown()

    def shutdown(self):
        self.kill_box()
        self.set_state("off")
        self.log("powersim_stopped")
        for s in self.sockets:
            s.close()
        os.close(self.ctl)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    env = os.environ.get
    p.add_argument("--mac", default=env("LAB_BOX_MAC", "02:00:5e:10:00:01"))
    p.add_argument("--listen", default="0.0.0.0")
    p.add_argument("--ports", type=lambda s: [int(x) for x in s.split(",")], default=[7, 9])
    p.add_argument("--events", required=True, help="JSON-lines events file (appended)")
    p.add_argument("--state-file", required=True, help="file holding off|booting|on")
    p.add_argument("--control", required=True, help="control FIFO path (created if missing)")
    p.add_argument("--boot-script", required=True, help="script run in the new pid+mount ns; execs sshd")
    p.add_argument("--sshd-log", required=True)
    p.add_argument("--ssh-addr", required=True)
    p.add_argument("--ssh-port", type=int, default=22)
    p.add_argument("--ssh-timeout", type=float, default=20.0, help="seconds for sshd to accept connections")
    p.add_argument("--boot-delay", type=float, default=float(env("LAB_BOOT_DELAY", "1.0")))
    p.add_argument("--poweroff-delay", type=float, default=float(env("LAB_POWEROFF_DELAY", "0.3")))
    p.add_argument("--ignore-first", type=int, default=int(env("LAB_IGNORE_FIRST", "0")))
    p.add_argument("--never-boot", action="store_true", default=env("LAB_NEVER_BOOT", "") == "1")
    p.add_argument("--start-on", action="store_true", default=env("LAB_START_ON", "") == "1")
    p.add_argument("--password", default=env("LAB_WOL_PASSWORD") or None, help="SecureOn password, 12 hex digits")
    a = p.parse_args()

    sim = Sim(a)

    def stop(signum, frame):
        sim.running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, stop)
    sim.run()


if __name__ == "__main__":
    main()
