#!/usr/bin/env python3
"""Hostile clients against examples/http_server (and the soak against echo_server too).

    http_abuse.py CHECK BIN_DIR

CHECK is one of: slow_body, never_reads, drain, second_signal, header_values, directory,
soak. The backend is whatever CORIO_BACKEND says. Each check starts its own server on a
free port, prints what it observed, and exits 1 with the reason when a promise is broken.
Bounds are generous (several times the limit under test): they tell "cut off at the
limit" from "held for ever", not fast from slow.
"""

import asyncio
import atexit
import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

BIN = ""


def fail(why):
    print("FAIL: " + why, flush=True)
    sys.exit(1)


class Server:
    """A server process whose first line says 'listening on port N'."""

    def __init__(self, args):
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline()
        if "listening on port" not in line:
            fail("the server did not start: " + line + self.proc.stdout.read())
        self.port = int(line.split("listening on port")[1].split()[0])
        self.pid = self.proc.pid

    def fds(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def rss_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def wait_fds(self, at_most, within):
        """Waits until the server holds at most `at_most` fds; returns how long that took."""
        start = time.monotonic()
        while time.monotonic() - start < within:
            if self.fds() <= at_most:
                return time.monotonic() - start
            time.sleep(0.05)
        fail("the server still holds %d fds after %.1f s (baseline %d)" % (self.fds(), within, at_most))

    def stop(self, sig=signal.SIGINT, within=10.0):
        """Sends `sig`; the server must exit 0 within `within` s. Returns the seconds it took."""
        start = time.monotonic()
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            fail("the server did not exit within %.1f s of signal %d" % (within, sig))
        out = self.proc.stdout.read()
        if rc != 0:
            fail("the server exited with %d: %s" % (rc, out))
        return time.monotonic() - start, out

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def http_server(*extra, root=None):
    args = [os.path.join(BIN, "http_server"), "--port", "0"]
    if root is not None:
        args += ["--root", root]
    srv = Server(args + list(extra))
    # One request first: the server is then fully up (its signal fd and the like exist),
    # so that its fd count is the baseline every later check returns to.
    status, _ = get(srv.port)
    if not status.startswith("HTTP/1.1 200"):
        fail("the server's first answer: " + status)
    return srv


def connect(port, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    return s


def closed_by_peer(s, within):
    """Reads and drops until the peer closes (True) or `within` s pass (False)."""
    end = time.monotonic() + within
    while time.monotonic() < end:
        s.settimeout(max(0.01, end - time.monotonic()))
        try:
            if not s.recv(65536):
                return True
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
    return False


def exchange(port, data, within=10.0):
    """Sends raw bytes on a fresh connection and returns all the server answers until it closes."""
    s = connect(port)
    s.sendall(data)
    out = b""
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            d = s.recv(65536)
        except ConnectionResetError:
            break
        if not d:
            break
        out += d
    s.close()
    return out


def get(port):
    """One well-formed request; returns (status line, seconds)."""
    start = time.monotonic()
    out = exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    return out.split(b"\r\n", 1)[0].decode("latin-1"), time.monotonic() - start


# --- issue 11, item 1: a slow request body -------------------------------------------------

def check_slow_body():
    srv = http_server("--header-ms", "1000", "--body-ms", "1500")
    try:
        base = srv.fds()
        s = connect(srv.port)
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n")
        start = time.monotonic()
        s.setblocking(False)
        closed = False
        # Two bytes every 200 ms: each read comes well within the header limit, the whole
        # body never within the body limit.
        while time.monotonic() - start < 8.0:
            try:
                s.send(b"ab")
                d = s.recv(65536)
                if not d:
                    closed = True
                    break
            except BlockingIOError:
                pass
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.2)
        took = time.monotonic() - start
        if not closed:
            fail("a body trickled at 10 B/s still held its connection after %.1f s (--body-ms 1500)" % took)
        if took < 1.4:
            fail("the connection was cut after %.2f s, before --body-ms 1500" % took)
        s.close()
        srv.wait_fds(base, 5)
        status, _ = get(srv.port)
        if not status.startswith("HTTP/1.1 200"):
            fail("the server no longer answers: " + status)
        print("slow_body: a 10 B/s body was cut off after %.2f s (--body-ms 1500); fds back to %d" % (took, base))
        srv.stop()
    finally:
        srv.kill()


# --- issue 11, item 2: a client that never reads, and shutdown ----------------------------

def big_root(mib=32):
    root = tempfile.mkdtemp(prefix="corio-abuse-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    with open(os.path.join(root, "big.bin"), "wb") as f:
        f.write(os.urandom(1 << 20) * mib)  # 32 MiB: far more than the socket buffers hold
    os.mkdir(os.path.join(root, "sub"))
    return root


def stalled_download(port):
    """A client that asks for 32 MiB and never reads a byte."""
    s = connect(port, rcvbuf=4096)
    s.sendall(b"GET /static/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    return s


def check_never_reads():
    root = big_root()
    srv = http_server("--write-ms", "1000", root=root)
    try:
        base = srv.fds()
        start = time.monotonic()
        s = stalled_download(srv.port)
        time.sleep(0.3)
        if srv.fds() <= base:
            fail("the server did not take the connection")
        srv.wait_fds(base, 8)  # the socket and the file both go
        took = time.monotonic() - start
        if took < 0.9:
            fail("the stalled download was cut after %.2f s, before --write-ms 1000" % took)
        s.close()
        status, _ = get(srv.port)
        if not status.startswith("HTTP/1.1 200"):
            fail("the server no longer answers: " + status)
        print("never_reads: a client that never reads was cut off after %.2f s (--write-ms 1000); fds back to %d"
              % (took, base))
        srv.stop()
    finally:
        srv.kill()


def check_drain():
    root = big_root()
    # The write limit is far away: only the drain time can end the stalled download.
    srv = http_server("--write-ms", "600000", "--drain-ms", "1000", root=root)
    try:
        stalled = [stalled_download(srv.port) for _ in range(3)]
        idle = connect(srv.port)
        time.sleep(0.3)
        took, out = srv.stop(signal.SIGTERM, within=8)
        if took < 0.9:
            fail("the server ended after %.2f s, before its 1000 ms drain" % took)
        if "drain time is up: cancelling 3 connections" not in out:
            fail("the server did not say it cancelled the 3 stalled connections: " + out)
        print("drain: SIGTERM with 3 stalled downloads and an idle connection: exit 0 after %.2f s (--drain-ms 1000)"
              % took)
        for s in stalled + [idle]:
            s.close()
    finally:
        srv.kill()


def check_second_signal():
    root = big_root()
    srv = http_server("--write-ms", "600000", "--drain-ms", "600000", root=root)
    try:
        s = stalled_download(srv.port)
        time.sleep(0.3)
        srv.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        if srv.proc.poll() is not None:
            fail("the server ended at the first signal with a download in flight")
        took, out = srv.stop(signal.SIGINT, within=5)
        if "second signal: cancelling 1 connections" not in out:
            fail("the server did not say the second signal cancelled the download: " + out)
        print("second_signal: a second signal ended a 600 s drain after %.2f s, exit 0" % took)
        s.close()
    finally:
        srv.kill()


# --- issue 11, item 3: header values and Host ---------------------------------------------

def check_header_values():
    srv = http_server()
    try:
        bad = {
            "NUL in a value": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
            "bare CR in a value": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
            "bare LF in a value": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\nb\r\n\r\n",
            "DEL in a value": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7fb\r\n\r\n",
            "HTTP/1.1 without Host": b"GET / HTTP/1.1\r\nX-A: a\r\n\r\n",
            "two Host lines": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "two Host lines in HTTP/1.0": b"GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n",
            "a Host with a space": b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
            "a Host with a slash": b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
            "an obs-fold line": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
        }
        for what, req in bad.items():
            out = exchange(srv.port, req)
            if not out.startswith(b"HTTP/1.1 400 "):
                fail("no 400 for %s: %r" % (what, out[:80]))
        good = {
            "HTTP/1.0 without Host": b"GET / HTTP/1.0\r\n\r\n",
            "an empty Host": b"GET / HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n",
            "a Host with a port": b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n",
            "obs-text and a tab in a value": b"GET / HTTP/1.1\r\nHost: x\r\nX-A: caf\xe9\tau lait\r\nConnection: close\r\n\r\n",
        }
        for what, req in good.items():
            out = exchange(srv.port, req)
            if not out.startswith(b"HTTP/1.1 200 "):
                fail("no 200 for %s: %r" % (what, out[:80]))
        print("header_values: %d malformed requests got 400, %d well-formed ones 200" % (len(bad), len(good)))
        srv.stop()
    finally:
        srv.kill()


# --- issue 11, item 4: a directory is not a file ------------------------------------------

def check_directory():
    root = big_root()
    srv = http_server(root=root)
    try:
        for target in (b"/static/sub", b"/static/sub/", b"/static/."):
            out = exchange(srv.port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if not out.startswith(b"HTTP/1.1 404 "):
                fail("no 404 for the directory %s: %r" % (target.decode(), out[:120]))
        print("directory: GET of a directory is a 404")
        srv.stop()
    finally:
        srv.kill()


# --- the soak: hundreds of hostile connections at once ------------------------------------

async def hostile(port, kind, payload):
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 10)
    except (OSError, asyncio.TimeoutError):
        return "refused"
    sock = writer.get_extra_info("socket")
    try:
        if kind == "reset":
            writer.write(payload[: len(payload) // 2])
            await writer.drain()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        elif kind == "half_close":
            writer.write(payload)
            writer.write_eof()
            await asyncio.wait_for(reader.read(), 10)
        elif kind == "slow_writer":  # 7 bytes every 50 ms, 20 times, then half-closes
            for i in range(0, min(len(payload), 140), 7):
                writer.write(payload[i : i + 7])
                await writer.drain()
                await asyncio.sleep(0.05)
            writer.write_eof()
            await asyncio.wait_for(reader.read(), 10)
        elif kind == "slow_reader":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            writer.write(payload)
            await writer.drain()
            for _ in range(10):  # 512 bytes every 50 ms, then it goes
                if not await asyncio.wait_for(reader.read(512), 2):
                    break
                await asyncio.sleep(0.05)
        elif kind == "garbage":
            writer.write(os.urandom(3000))
            writer.write_eof()
            await asyncio.wait_for(reader.read(), 10)
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.transport.abort() if kind == "reset" else writer.close()
    return kind


async def soak_rounds(srv, payloads, rounds, width, probe):
    kinds = ["reset", "half_close", "slow_writer", "slow_reader", "garbage"]
    worst = 0.0
    for r in range(rounds):
        jobs = [hostile(srv.port, kinds[i % len(kinds)], payloads[i % len(payloads)]) for i in range(width)]
        results, probe_s = await asyncio.gather(asyncio.gather(*jobs), probe(srv.port))
        worst = max(worst, probe_s)
        if results.count("refused") > width // 10:
            fail("round %d: %d of %d connections refused" % (r, results.count("refused"), width))
    return worst


async def http_probe(port):
    await asyncio.sleep(0.2)  # in the middle of the round
    status, took = await asyncio.get_running_loop().run_in_executor(None, get, port)
    if not status.startswith("HTTP/1.1 200"):
        fail("a well-behaved request during the soak got: " + status)
    return took


async def echo_probe(port):
    await asyncio.sleep(0.2)
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"ping\n")
    got = await asyncio.wait_for(reader.readexactly(5), 10)
    writer.close()
    if got != b"ping\n":
        fail("the echo server answered a well-behaved client with %r" % got)
    return time.monotonic() - start


def soak_one(name, srv, payloads, probe):
    try:
        asyncio.run(probe(srv.port))
        base_fds = srv.fds()
        asyncio.run(soak_rounds(srv, payloads, 2, 300, probe))  # warm-up: caches, pools
        srv.wait_fds(base_fds, 15)
        warm_rss = srv.rss_kib()
        worst = asyncio.run(soak_rounds(srv, payloads, 6, 300, probe))
        took = srv.wait_fds(base_fds, 15)
        rss = srv.rss_kib()
        growth = rss - warm_rss
        print("soak %s: 8 rounds of 300 hostile connections; a good client's slowest answer %.2f s; "
              "fds back to %d within %.2f s; RSS %d KiB after warm-up, %d KiB after (%+d KiB)"
              % (name, worst, base_fds, took, warm_rss, rss, growth))
        if worst > 5.0:
            fail("the server took %.2f s to answer a well-behaved client during the soak" % worst)
        if growth > 32 * 1024:
            fail("RSS grew by %d KiB over 6 rounds after the warm-up" % growth)
        srv.stop()
    finally:
        srv.kill()


def check_soak():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    http_payloads = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 3,
        b"GET /static/big.bin HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 500,
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n",
    ]
    root = big_root(mib=1)
    soak_one("http_server", http_server("--idle-ms", "1000", "--header-ms", "1000", "--body-ms", "1000",
                                        "--write-ms", "1000", root=root), http_payloads, http_probe)
    echo_payloads = [b"hello\n" * 100, os.urandom(100000), b"x"]
    soak_one("echo_server", Server([os.path.join(BIN, "echo_server"), "0"]), echo_payloads, echo_probe)


CHECKS = {
    "slow_body": check_slow_body,
    "never_reads": check_never_reads,
    "drain": check_drain,
    "second_signal": check_second_signal,
    "header_values": check_header_values,
    "directory": check_directory,
    "soak": check_soak,
}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in CHECKS:
        print(__doc__)
        sys.exit(2)
    BIN = sys.argv[2]
    CHECKS[sys.argv[1]]()
