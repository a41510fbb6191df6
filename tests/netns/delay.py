#!/usr/bin/env python3
"""Delay and jitter for the network tests, in user space.

This machine's kernel has no sch_netem, so `tc qdisc ... netem delay 50ms 20ms` is not
available. It does have the iptables NFQUEUE target: the kernel hands each matching packet
to this process over nfnetlink_queue and holds it until we give a verdict. We accept each
packet after `delay ± jitter` milliseconds (uniform, like netem's default), verdicts out of
order, so packets are reordered as with netem when the jitter exceeds their spacing.

Standard library only (raw netlink socket). Usage, as root in the namespace:

    delay.py --queue 0 --delay-ms 50 --jitter-ms 20 --stats FILE

Writes the number of delayed packets and the mean applied delay to FILE every second and
at exit (SIGTERM), as JSON.
"""

import argparse
import heapq
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
NF_ACCEPT = 1


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    raw = struct.pack("=HH", 4 + len(payload), kind) + payload
    return raw + b"\0" * (-len(raw) % 4)


def message(msg: int, queue: int, attrs: bytes, flags: int = NLM_F_REQUEST) -> bytes:
    """An nfnetlink message: nlmsghdr, nfgenmsg (AF_UNSPEC, version 0, queue), attributes."""
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + attrs
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg, flags, 0, 0) + body


def configure(sock: socket.socket, queue: int, maxlen: int) -> None:
    """Bind the queue, ask for metadata only (we need the packet id, not its bytes)."""
    for attrs in (
        attr(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, 0)),
        attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META)),
        attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", maxlen)),
    ):
        sock.send(message(NFQNL_MSG_CONFIG, queue, attrs, NLM_F_REQUEST | NLM_F_ACK))
        reply = sock.recv(65536)
        length, kind = struct.unpack_from("=IH", reply)
        if kind == NLMSG_ERROR:
            (err,) = struct.unpack_from("=i", reply, 16)
            if err != 0:
                sys.exit(f"delay.py: configuring queue {queue} failed: {os.strerror(-err)}")


def packet_ids(data: bytes):
    """The packet ids in a datagram of NFQNL_MSG_PACKET messages."""
    off = 0
    while off + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, off)
        if length < 16:
            return
        if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            a = off + 20  # nlmsghdr + nfgenmsg
            while a + 4 <= off + length:
                alen, akind = struct.unpack_from("=HH", data, a)
                if alen < 4:
                    break
                if akind & 0x7FFF == NFQA_PACKET_HDR:
                    (pid,) = struct.unpack_from("!I", data, a + 4)
                    yield pid
                    break
                a += (alen + 3) & ~3
        off += (length + 3) & ~3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queue", type=int, default=0)
    ap.add_argument("--delay-ms", type=float, required=True)
    ap.add_argument("--jitter-ms", type=float, default=0.0)
    ap.add_argument("--maxlen", type=int, default=20000)
    ap.add_argument("--stats", required=True)
    args = ap.parse_args()
    if args.jitter_ms > args.delay_ms:
        sys.exit("delay.py: jitter must not exceed the delay")

    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    for opt in (33, socket.SO_RCVBUF):  # 33 = SO_RCVBUFFORCE (root)
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, 8 << 20)
            break
        except OSError:
            continue
    sock.bind((0, 0))
    configure(sock, args.queue, args.maxlen)

    pending: list[tuple[float, int]] = []
    stats = {"delayed": 0, "mean_delay_ms": 0.0, "overruns": 0}
    total_delay = 0.0
    running = True

    def stop(*_):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def write_stats() -> None:
        tmp = args.stats + ".tmp"
        with open(tmp, "w") as f:
            json.dump(stats, f)
        os.replace(tmp, args.stats)

    write_stats()
    next_stats = time.monotonic() + 1.0
    while running:
        now = time.monotonic()
        while pending and pending[0][0] <= now:
            _, pid = heapq.heappop(pending)
            verdict = attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, pid))
            sock.send(message(NFQNL_MSG_VERDICT, args.queue, verdict))
        timeout = max(0.0, pending[0][0] - now) if pending else 0.2
        try:
            ready, _, _ = select.select([sock], [], [], min(timeout, 0.2))
        except InterruptedError:
            continue
        if ready:
            try:
                data = sock.recv(1 << 20)
            except OSError:  # ENOBUFS: the kernel dropped messages; it reports and goes on
                stats["overruns"] += 1
                continue
            now = time.monotonic()
            for pid in packet_ids(data):
                d = args.delay_ms + random.uniform(-args.jitter_ms, args.jitter_ms)
                heapq.heappush(pending, (now + d / 1000.0, pid))
                stats["delayed"] += 1
                total_delay += d
        if time.monotonic() >= next_stats:
            stats["mean_delay_ms"] = total_delay / stats["delayed"] if stats["delayed"] else 0.0
            write_stats()
            next_stats = time.monotonic() + 1.0
    # Release what is held so nothing is lost on exit.
    for _, pid in pending:
        sock.send(message(NFQNL_MSG_VERDICT, args.queue, attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, pid))))
    stats["mean_delay_ms"] = total_delay / stats["delayed"] if stats["delayed"] else 0.0
    write_stats()


if __name__ == "__main__":
    main()
