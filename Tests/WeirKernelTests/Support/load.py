#!/usr/bin/env python3
"""Load for weir's zero-loss tests (handover, restarts). Runs inside test network namespaces only.

echo PORT                       echo server on every address; prints "ready".
client HOST PORT N SECONDS      N connections that echo a line each every 20 ms, while two new connections per round
                                are opened, echoed once and closed; prints "connected", then at the end
                                "streams=N rounds=R stream_errors=E new=C new_errors=F" (a stream that failed stays
                                failed and is not counted again).
hold HOST PORT N                N idle connections; prints "held", then for each line on stdin echoes a line once
                                through every connection and prints "ok=K failed=F".
"""
import os
import resource
import selectors
import socket
import sys
import time


def echo(port):
    sel = selectors.DefaultSelector()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(4096)
    s.setblocking(False)
    sel.register(s, selectors.EVENT_READ)
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            if key.fileobj is s:
                try:
                    c, _ = s.accept()
                except OSError:
                    continue
                c.setblocking(False)
                sel.register(c, selectors.EVENT_READ)
                continue
            c = key.fileobj
            try:
                d = c.recv(65536)
            except OSError:
                d = b""
            if not d:
                sel.unregister(c)
                c.close()
                continue
            c.setblocking(True)
            try:
                c.sendall(d)
            except OSError:
                pass
            c.setblocking(False)


def echo_once(c, msg):
    """Sends msg on c and reads the same bytes back; OSError on end of stream or other bytes."""
    c.sendall(msg)
    got = b""
    while len(got) < len(msg):
        d = c.recv(len(msg) - len(got))
        if not d:
            raise OSError("end of stream")
        got += d
    if got != msg:
        raise OSError("corrupt")


def client(host, port, n, seconds):
    conns = [socket.create_connection((host, port), timeout=10) for _ in range(n)]
    alive = [True] * n
    print("connected", flush=True)
    errors = rounds = new = new_errors = 0
    end = time.time() + seconds
    while time.time() < end:
        for i, c in enumerate(conns):
            if not alive[i]:
                continue
            msg = ("%d-%d-" % (i, rounds)).encode() + os.urandom(16).hex().encode() + b"\n"
            try:
                echo_once(c, msg)
            except OSError:
                errors += 1
                alive[i] = False
        rounds += 1
        for _ in range(2):
            try:
                s = socket.create_connection((host, port), timeout=10)
                s.sendall(b"x\n")
                if s.recv(2) != b"x\n":
                    new_errors += 1
                s.close()
            except OSError:
                new_errors += 1
            new += 1
        time.sleep(0.02)
    print("streams=%d rounds=%d stream_errors=%d new=%d new_errors=%d" % (n, rounds, errors, new, new_errors),
          flush=True)


def hold(host, port, n):
    conns = [socket.create_connection((host, port), timeout=30) for _ in range(n)]
    print("held", flush=True)
    for _ in sys.stdin:
        ok = failed = 0
        for i, c in enumerate(conns):
            try:
                echo_once(c, b"%d-%s\n" % (i, os.urandom(8).hex().encode()))
                ok += 1
            except OSError:
                failed += 1
        print("ok=%d failed=%d" % (ok, failed), flush=True)


if __name__ == "__main__":
    # A thousand connections (make stress's run of the systemd test) need more than the usual soft limit of 1,024.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if sys.argv[1] == "echo":
        echo(int(sys.argv[2]))
    elif sys.argv[1] == "hold":
        hold(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
