#!/usr/bin/env python3
"""Servers and clients for the proxy kernel tests. Runs inside throwaway namespaces only.

server PORT ADDR...      threaded server; the first line of each connection says what to do (see handle()).
                         Prints READY once listening, then one RESULT line per observation.
client MODE HOST PORT [ARG]  one client scenario; prints one result line and exits 0.
"""
import hashlib
import os
import socket
import struct
import sys
import threading
import time

CHUNK = 1 << 20


def pattern(total):
    """Deterministic bytes, generated fast: a 1 MiB random block with a counter prefix per chunk."""
    block = bytearray(os.urandom(CHUNK))
    sent = 0
    i = 0
    while sent < total:
        n = min(CHUNK, total - sent)
        block[0:8] = struct.pack("<Q", i)
        yield memoryview(block)[:n]
        sent += n
        i += 1


def readline(s):
    data = b""
    while not data.endswith(b"\n"):
        b = s.recv(1)
        if not b:
            break
        data += b
    return data.decode().strip()


def read_all(s):
    h = hashlib.sha256()
    n = 0
    while True:
        b = s.recv(CHUNK)
        if not b:
            return n, h.hexdigest()
        h.update(b)
        n += len(b)


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def linger_reset(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def handle(c, peer):
    try:
        cmd = readline(c)
        if cmd == "PEER":
            # Reply with the client address as this server sees it, then echo until end of stream.
            c.sendall(("peer=%s\n" % peer[0]).encode())
            while True:
                b = c.recv(65536)
                if not b:
                    break
                c.sendall(b)
            c.shutdown(socket.SHUT_WR)
        elif cmd == "SHA":
            n, digest = read_all(c)
            c.sendall(("%d %s\n" % (n, digest)).encode())
        elif cmd == "SLOWSHA":
            # A slow reader: the proxy's buffer toward it fills up and must stay bounded.
            h = hashlib.sha256()
            n = 0
            while True:
                b = c.recv(16384)
                if not b:
                    break
                h.update(b)
                n += len(b)
                time.sleep(0.0005)
            c.sendall(("%d %s\n" % (n, h.hexdigest())).encode())
        elif cmd.startswith("SEND "):
            # Server first: send N bytes, half-close, then read what the client sends after that.
            total = int(cmd.split()[1])
            h = hashlib.sha256()
            for chunk in pattern(total):
                h.update(chunk)
                c.sendall(chunk)
            c.shutdown(socket.SHUT_WR)
            n, _ = read_all(c)
            out("RESULT half=server-first sent=%d sent_sha=%s received_after=%d" % (total, h.hexdigest(), n))
        elif cmd == "LASTWORD":
            # The reply and the FIN in one segment (MSG_MORE, then shutdown), then wait for the client's end.
            c.send(b"bye\n", socket.MSG_MORE)
            c.shutdown(socket.SHUT_WR)
            read_all(c)
        elif cmd == "RESETME":
            linger_reset(c)
        elif cmd == "WAIT":
            try:
                b = c.recv(10)
                out("RESULT wait=%s" % ("eof" if not b else "data"))
            except ConnectionResetError:
                out("RESULT wait=reset")
    except (ConnectionResetError, BrokenPipeError) as e:
        out("RESULT error=%s" % type(e).__name__)
    finally:
        c.close()


def server(port, addrs):
    socks = []
    for a in addrs:
        fam = socket.AF_INET6 if ":" in a else socket.AF_INET
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((a, port))
        s.listen(4096)
        socks.append(s)

    def loop(s):
        while True:
            c, peer = s.accept()
            threading.Thread(target=handle, args=(c, peer), daemon=True).start()

    for s in socks:
        threading.Thread(target=loop, args=(s,), daemon=True).start()
    out("READY")
    while True:
        time.sleep(3600)


def connect(host, port, timeout=10):
    return socket.create_connection((host, port), timeout=timeout)


def outcome(s):
    """What a client sees next: data, eof or reset."""
    try:
        b = s.recv(100)
        return "eof" if not b else "data"
    except ConnectionResetError:
        return "reset"
    except socket.timeout:
        return "timeout"


def ping(s):
    s.sendall(b"ping")
    got = b""
    while len(got) < 4:
        b = s.recv(4 - len(got))
        if not b:
            return False
        got += b
    return got == b"ping"


def client(mode, host, port, arg):
    port = int(port)
    if mode == "peer":
        s = connect(host, port)
        s.sendall(b"PEER\n")
        line = readline(s)
        ok = ping(s)
        s.shutdown(socket.SHUT_WR)
        rest = s.recv(10)
        out("%s echo=%s eof=%s" % (line, ok, rest == b""))
    elif mode in ("sha", "slowsha"):
        # Client first: send N bytes, half-close, the server answers with its count and digest after end of stream
        # (slowsha: the server reads slowly).
        total = int(arg)
        s = connect(host, port, timeout=60)
        s.sendall(b"SHA\n" if mode == "sha" else b"SLOWSHA\n")
        h = hashlib.sha256()
        for chunk in pattern(total):
            h.update(chunk)
            s.sendall(chunk)
        s.shutdown(socket.SHUT_WR)
        reply = readline(s).split()
        out("bytes=%s match=%s" % (reply[0], reply[1] == h.hexdigest() and int(reply[0]) == total))
    elif mode == "tiny":
        # Request and FIN sent at once, right after connect: before the proxy's upstream connect has completed.
        rounds = int(arg)
        ok = 0
        for _ in range(rounds):
            s = connect(host, port)
            s.sendall(b"SHA\nabc")
            s.shutdown(socket.SHUT_WR)
            if readline(s).split()[:1] == ["3"]:
                ok += 1
            s.close()
        out("tiny ok=%d of=%d" % (ok, rounds))
    elif mode == "server-first":
        total = int(arg)
        s = connect(host, port, timeout=30)
        s.sendall(("SEND %d\n" % total).encode())
        n, digest = read_all(s)
        # The server half-closed; this direction still works.
        s.sendall(b"x" * 1000)
        s.shutdown(socket.SHUT_WR)
        rest = s.recv(10)
        out("received=%d sha=%s eof=%s" % (n, digest, rest == b""))
    elif mode == "lastword":
        # Segments the client received (tcp_info.tcpi_segs_in, offset 140) by the time it saw the end of stream:
        # SYN-ACK, the ACK of its request, then the reply with the FIN when the proxy keeps them together.
        s = connect(host, port)
        s.sendall(b"LASTWORD\n")
        reply = readline(s)
        eof = s.recv(10) == b""
        segs_in = struct.unpack_from("I", s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256), 140)[0]
        out("reply=%s eof=%s segs_in=%d" % (reply, eof, segs_in))
    elif mode == "reset-by-server":
        s = connect(host, port)
        s.sendall(b"RESETME\n")
        out("outcome=%s" % outcome(s))
    elif mode == "reset-by-client":
        s = connect(host, port)
        s.sendall(b"WAIT\n")
        time.sleep(0.5)
        linger_reset(s)
        s.close()
        out("done")
    elif mode == "expect":
        # One connection: what happens to it (connect refused, reset, eof, data), and how long it took.
        start = time.monotonic()
        try:
            s = connect(host, port, timeout=float(arg or 10))
            s.sendall(b"PEER\n")
            result = outcome(s)
        except ConnectionRefusedError:
            result = "refused"
        except ConnectionResetError:
            result = "reset"
        out("outcome=%s seconds=%.2f" % (result, time.monotonic() - start))
    elif mode == "idle":
        s = connect(host, port)
        s.sendall(b"PEER\n")
        readline(s)
        ok = ping(s)
        s.settimeout(float(arg))
        out("echo=%s after_idle=%s" % (ok, outcome(s)))
    elif mode == "maxconn":
        # Open N working connections, then one more, then check the first N still work.
        n = int(arg)
        held = []
        for _ in range(n):
            s = connect(host, port)
            s.sendall(b"PEER\n")
            readline(s)
            held.append(s)
        try:
            extra = connect(host, port)
            extra.settimeout(5)
            try:
                extra.sendall(b"PEER\n")
            except OSError:
                pass
            extra_outcome = outcome(extra)
        except OSError as e:
            # The reset can overtake the connect on a loaded machine.
            extra_outcome = "reset" if isinstance(e, ConnectionResetError) else type(e).__name__
        still = 0
        for s in held:
            try:
                still += 1 if ping(s) else 0
            except OSError as e:
                out("held connection failed: %r" % e)
        out("extra=%s still_working=%d of=%d" % (extra_outcome, still, n))
    elif mode == "flood":
        # More clients than the proxy has descriptors: hold them all, count what works, release, try again.
        n = int(arg)
        held = []
        for _ in range(n):
            try:
                s = connect(host, port, timeout=5)
                s.sendall(b"PEER\n")
                held.append(s)
            except OSError:
                pass
        ok = 0
        deadline = time.monotonic() + 3
        for s in held:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                if readline(s).startswith("peer="):
                    ok += 1
            except OSError:
                pass
        out("FLOODED ok=%d of=%d" % (ok, n))
        time.sleep(float(os.environ.get("HOLD", "2")))
        for s in held:
            s.close()
        time.sleep(1)
        s = connect(host, port)
        s.sendall(b"PEER\n")
        line = readline(s)
        out("ok=%d of=%d after=%s" % (ok, n, line))
    elif mode == "many":
        # N short connections, each a small request and reply.
        total = int(arg)
        fails = 0
        for _ in range(total):
            s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            try:
                s.connect((host, port))
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                while s.recv(65536):
                    pass
            except OSError:
                fails += 1
            s.close()
        out("connections=%d fails=%d" % (total, fails))
    elif mode == "idle-many":
        # N connections, each answered once, then left idle: how many does the proxy close within WAIT seconds?
        n, wait = arg.split(",")
        held = []
        for _ in range(int(n)):
            s = connect(host, port)
            s.sendall(b"PEER\n")
            readline(s)
            held.append(s)
        out("HELD %d" % len(held))
        closed = 0
        deadline = time.monotonic() + float(wait)
        for s in held:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            if outcome(s) in ("eof", "reset"):
                closed += 1
        out("held=%d closed_by_proxy=%d" % (len(held), closed))
    elif mode == "drain":
        # One open connection; SIGTERM the proxy; new connections are refused, the open one still works.
        pid = int(arg)
        s = connect(host, port)
        s.sendall(b"PEER\n")
        readline(s)
        before = ping(s)
        os.kill(pid, 15)
        time.sleep(0.5)
        try:
            n = connect(host, port, timeout=3)
            n.sendall(b"PEER\n")
            new = outcome(n)
        except ConnectionRefusedError:
            new = "refused"
        after = ping(s)
        s.close()
        out("before=%s new=%s after=%s" % (before, new, after))
    elif mode == "drain-held":
        # One open connection that never finishes; SIGTERM the proxy; what happens to it.
        pid = int(arg)
        s = connect(host, port)
        s.sendall(b"PEER\n")
        readline(s)
        os.kill(pid, 15)
        s.settimeout(30)
        out("held=%s" % outcome(s))
    elif mode == "hold":
        # One connection kept busy for ARG seconds (a ping every 0.2 s): does it survive what happens meanwhile?
        s = connect(host, port)
        s.sendall(b"PEER\n")
        readline(s)
        print("HOLDING", flush=True)
        end = time.time() + float(arg)
        pings = 0
        while time.time() < end:
            if not ping(s):
                out("pings=%d broken=True" % pings)
                return
            pings += 1
            time.sleep(0.2)
        s.close()
        out("pings=%d broken=False" % pings)
    elif mode == "loop":
        # New connections back to back for ARG seconds: how many succeed, are refused or fail otherwise, and the
        # longest run of time in which none succeeded (the gap a restart leaves).
        end = time.time() + float(arg)
        ok = refused = other = 0
        last_ok = time.time()
        gap = 0.0
        print("LOOPING", flush=True)
        while time.time() < end:
            try:
                c = connect(host, port, timeout=2)
                c.sendall(b"PEER\n")
                if readline(c).startswith("peer="):
                    ok += 1
                    now = time.time()
                    gap = max(gap, now - last_ok)
                    last_ok = now
                else:
                    other += 1
                c.close()
            except ConnectionRefusedError:
                refused += 1
            except OSError:
                other += 1
            time.sleep(0.002)
        out("ok=%d refused=%d other=%d max_gap_ms=%d" % (ok, refused, other, gap * 1000))
    elif mode == "crowd":
        # ARG idle connections and 100 byte-a-second clients on an admin endpoint, then probes: every probe must
        # still be answered. Prints each probe's status and the slowest probe's latency.
        idle = []
        for _ in range(int(arg)):
            try:
                idle.append(connect(host, port, timeout=2))
            except OSError:
                pass
        slow = [connect(host, port, timeout=2) for _ in range(100)]
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
        statuses = []
        worst = 0.0
        for i in range(12):
            for s_ in slow:
                try:
                    s_.send(request[i:i + 1])
                except OSError:
                    pass
            for path in ("/healthz", "/readyz"):
                t = time.time()
                try:
                    p = connect(host, port, timeout=2)
                    p.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
                    line = readline(p)
                    p.close()
                except OSError as e:
                    line = "error " + type(e).__name__
                worst = max(worst, time.time() - t)
                statuses.append(line.split(" ")[1] if line.startswith("HTTP/1.1 ") else line)
            time.sleep(1)
        out("statuses=%s worst_ms=%.1f idle=%d" % (",".join(sorted(set(statuses))), worst * 1000, len(idle)))
    else:
        raise SystemExit("unknown client mode " + mode)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(int(sys.argv[2]), sys.argv[3:])
    else:
        client(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] if len(sys.argv) > 5 else None)
