#!/usr/bin/env python3
"""DNS servers and clients for weir's kernel tests (real DNS messages over UDP and TCP). Test namespaces only.

serve LABEL [--forward HOST:PORT] ADDR:PORT...   answer every query (UDP and TCP on each address) with one TXT
        record naming LABEL. With --forward, relay the query upstream (same transport) and answer "LABEL>UPSTREAM";
        a relayed query carries a "fwd-" name, which is answered directly, so a relay loop shows as "LABEL>LABEL".
        Prints "ready".
query HOST PORT udp|tcp    one query; prints the TXT answer, "ERR:<reason>", or, when the reply is not DNS, its
        first word (a probe server's "pod:15001 ..." line names the listener that took the connection).
"""
import random
import select
import selectors
import socket
import struct
import sys


def build_query(qid, name):
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + q + struct.pack("!HH", 16, 1)


def parse_question(msg):
    """(id, name, end of question) of a DNS message."""
    qid = struct.unpack_from("!H", msg)[0]
    i, labels = 12, []
    while msg[i]:
        labels.append(msg[i + 1:i + 1 + msg[i]].decode())
        i += 1 + msg[i]
    return qid, ".".join(labels), i + 5


def build_answer(query, text):
    qid, _, end = parse_question(query)
    data = text.encode()[:255]
    rr = b"\xc0\x0c" + struct.pack("!HHIH", 16, 1, 0, len(data) + 1) + bytes([len(data)]) + data
    return struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0) + query[12:end] + rr


def parse_answer(msg, qid):
    rid, flags, qd, an = struct.unpack_from("!HHHH", msg)
    if rid != qid or not flags & 0x8000 or an < 1:
        raise ValueError("not an answer to this query")
    _, _, end = parse_question(msg)
    rdlen = struct.unpack_from("!H", msg, end + 10)[0]
    txt = msg[end + 12:end + 12 + rdlen]
    return txt[1:1 + txt[0]].decode()


def split_hostport(text):
    host, port = text.rsplit(":", 1)
    return host.strip("[]"), int(port)


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def ask(host, port, transport, msg, timeout=3):
    """Sends a DNS message; returns the reply bytes. UDP uses a connected socket: a reply from any other address (a
    reply that was not translated back) is not delivered."""
    if transport == "udp":
        s = socket.socket(family(host), socket.SOCK_DGRAM)
        s.settimeout(timeout)
        s.connect((host, port))
        s.send(msg)
        reply = s.recv(4096)
        s.close()
        return reply
    s = socket.socket(family(host), socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((host, port))
    data = b""
    # A DNS server waits for the query; a probe server speaks first (and resets a connection it did not read).
    if not select.select([s], [], [], 0.15)[0]:
        s.sendall(struct.pack("!H", len(msg)) + msg)
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    return data


def serve(label, forward, addresses):
    sel = selectors.DefaultSelector()
    for a in addresses:
        host, port = split_hostport(a)
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            s = socket.socket(family(host), kind)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family(host) == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            s.bind((host, port))
            if kind == socket.SOCK_STREAM:
                s.listen(64)
            sel.register(s, selectors.EVENT_READ, kind)
    print("ready", flush=True)

    def answer(query, transport):
        qid, name, _ = parse_question(query)
        if forward is None or name.startswith("fwd-"):
            return build_answer(query, label)
        host, port = split_hostport(forward)
        relayed = build_query(qid, "fwd-" + name)
        try:
            upstream = describe(ask(host, port, transport, relayed), transport, qid)
        except socket.timeout:
            upstream = "ERR:timeout"
        except OSError as e:
            upstream = "ERR:%s" % e.strerror
        return build_answer(query, "%s>%s" % (label, upstream))

    while True:
        for key, _ in sel.select():
            s = key.fileobj
            try:
                if key.data == socket.SOCK_DGRAM:
                    query, peer = s.recvfrom(4096)
                    s.sendto(answer(query, "udp"), peer)
                    continue
                conn, _ = s.accept()
                conn.settimeout(3)
                head = conn.recv(2)
                length = struct.unpack("!H", head)[0]
                query = b""
                while len(query) < length:
                    chunk = conn.recv(length - len(query))
                    if not chunk:
                        break
                    query += chunk
                reply = answer(query, "tcp")
                conn.sendall(struct.pack("!H", len(reply)) + reply)
                conn.close()
            except (OSError, ValueError, IndexError, struct.error):
                continue


def query(host, port, transport):
    qid = random.randint(1, 65535)
    try:
        reply = ask(host, port, transport, build_query(qid, "probe.weir.test"))
    except socket.timeout:
        print("ERR:timeout")
        return
    except OSError as e:
        print("ERR:%s" % e.strerror)
        return
    print(describe(reply, transport, qid))


def describe(reply, transport, qid):
    """The TXT answer of a reply, or the first word of a reply that is not DNS."""
    try:
        return parse_answer(reply[2:] if transport == "tcp" else reply, qid)
    except (ValueError, IndexError, struct.error, UnicodeDecodeError):
        words = reply.decode(errors="replace").split()
        return words[0] if words else "ERR:empty"


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        args = sys.argv[3:]
        fwd = None
        if args and args[0] == "--forward":
            fwd, args = args[1], args[2:]
        serve(sys.argv[2], fwd, args)
    else:
        query(sys.argv[2], int(sys.argv[3]), sys.argv[4])
