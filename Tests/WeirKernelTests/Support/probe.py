#!/usr/bin/env python3
"""Probe servers and clients for weir's kernel tests. Runs inside test network namespaces only.

serve LABEL [--transparent] PORT...   listen on every PORT (IPv4 and IPv6); each accepted connection gets one line
                                      "LABEL:LISTENPORT orig=ADDR:PORT peer=ADDR" and is closed. Prints "ready".
connect HOST PORT                     connect, print the line the server sent, or "ERR:<reason>".
"""
import selectors
import socket
import struct
import sys

SO_ORIGINAL_DST = 80
IP_TRANSPARENT = 19
IPV6_TRANSPARENT = 75


def original_destination(conn, family):
    try:
        if family == socket.AF_INET:
            raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
            port, addr = struct.unpack_from("!2xH4s", raw)
            return "%s:%d" % (socket.inet_ntop(socket.AF_INET, addr), port)
        raw = conn.getsockopt(socket.IPPROTO_IPV6, SO_ORIGINAL_DST, 28)
        port = struct.unpack_from("!2xH", raw)[0]
        addr = raw[8:24]
        return "[%s]:%d" % (socket.inet_ntop(socket.AF_INET6, addr), port)
    except OSError:
        host, port = conn.getsockname()[:2]
        return ("[%s]:%d" if family == socket.AF_INET6 else "%s:%d") % (host, port)


def serve(label, ports, transparent):
    sel = selectors.DefaultSelector()
    for port in ports:
        for family, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if transparent:
                if family == socket.AF_INET:
                    s.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
                else:
                    s.setsockopt(socket.IPPROTO_IPV6, IPV6_TRANSPARENT, 1)
            s.bind((host, port))
            s.listen(128)
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, (port, family))
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            port, family = key.data
            try:
                conn, peer = key.fileobj.accept()
            except OSError:
                continue
            line = "%s:%d orig=%s peer=%s\n" % (label, port, original_destination(conn, family), peer[0])
            try:
                conn.setblocking(True)
                conn.sendall(line.encode())
            except OSError:
                pass
            conn.close()


def connect(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect((host, port))
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(256)
            if not chunk:
                break
            data += chunk
        print(data.decode().strip() or "ERR:empty")
    except socket.timeout:
        print("ERR:timeout")
    except OSError as e:
        print("ERR:%s" % e.strerror)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        args = sys.argv[3:]
        transparent = "--transparent" in args
        serve(sys.argv[2], [int(p) for p in args if p != "--transparent"], transparent)
    else:
        connect(sys.argv[2], int(sys.argv[3]))
