#!/usr/bin/env python3
"""A tiny authoritative DNS server for deploy/test-image: answers A queries for the names it is given
with one address, AAAA with no records, anything else NXDOMAIN. It lets the static binary's resolver
(glibc, statically linked) be tested over real DNS on loopback, where the machine has no outside DNS.

    fake_dns.py BIND_ADDR ANSWER_ADDR NAME [NAME...]     # e.g. 127.0.53.1 127.0.0.1 api.groq.com

Prints "ready" once bound and one line per query; stops on SIGTERM or after 600 s.
"""
import signal
import socket
import struct
import sys
import time


def parse_name(msg, off):
    labels = []
    while True:
        n = msg[off]
        off += 1
        if n == 0:
            return ".".join(labels).lower(), off
        labels.append(msg[off:off + n].decode("ascii", "replace"))
        off += n


def answer(query, names, addr):
    qid, _flags, qdcount = struct.unpack("!HHH", query[:6])
    if qdcount != 1:
        return None
    name, off = parse_name(query, 12)
    qtype, _qclass = struct.unpack("!HH", query[off:off + 4])
    question = query[12:off + 4]
    known = name in names
    rcode = 0 if known else 3
    ancount = 1 if known and qtype == 1 else 0
    header = struct.pack("!HHHHHH", qid, 0x8400 | 0x0100 | rcode, 1, ancount, 0, 0)
    body = question
    if ancount:
        body += struct.pack("!HHHIH", 0xC00C, 1, 1, 30, 4) + socket.inet_aton(addr)
    print(f"query {name} type {qtype} -> {'A ' + addr if ancount else ('NOERROR empty' if known else 'NXDOMAIN')}", flush=True)
    return header + body


def main():
    bind, addr, names = sys.argv[1], sys.argv[2], {n.lower().rstrip(".") for n in sys.argv[3:]}
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((bind, 53))
    sock.settimeout(1.0)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("ready", flush=True)
    end = time.time() + 600
    while time.time() < end:
        try:
            query, peer = sock.recvfrom(512)
        except socket.timeout:
            continue
        try:
            reply = answer(query, names, addr)
        except (IndexError, struct.error):
            reply = None
        if reply:
            sock.sendto(reply, peer)


if __name__ == "__main__":
    main()
