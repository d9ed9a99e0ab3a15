#!/usr/bin/env python3
"""slow_client.py: a "slowloris" client for tests/test_serve.sh: opens COUNT connections
to HOST:PORT from the source address SOURCE (e.g. 127.0.0.2, so that another loopback
address is a different client to the server), and on each sends a request's headers one
byte every INTERVAL seconds, never finishing them, for DURATION seconds. It notes when the
server closes each connection (end of file or a reset), seconds after it was opened.

Once every connection is open it creates the file READY (so the caller can send its own
request while they are all held); at the end it prints one line:
    opened=N refused=R early=E held=H closed=C closed_min=A closed_max=B open=O
  opened      connections made (the TCP handshake done)
  refused     connect() failed
  early       closed by the server within EARLY seconds of opening (turned away at once)
  held        the others: still open EARLY seconds after opening
  closed      held ones the server closed before the end; closed_min/closed_max their
              ages when closed (s, -1 when none)
  open        held ones still open at the end
Only the Python standard library. Usage:
  slow_client.py HOST PORT SOURCE COUNT INTERVAL DURATION EARLY READY
"""
import errno
import select
import socket
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: slow\r\nX-Slow: " + b"a" * 4000


def main():
    host, port, source = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    count, interval, duration = int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
    early, ready = float(sys.argv[7]), sys.argv[8]

    start = time.monotonic()
    conns = {}  # fd -> [socket, opened at, bytes sent, closed at or None]
    refused = 0
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((source, 0))
            s.connect((host, port))
        except OSError:
            refused += 1
            s.close()
            continue
        s.setblocking(False)
        conns[s.fileno()] = [s, time.monotonic(), 0, None]
    open(ready, "w").close()

    poller = select.poll()
    for fd in conns:
        poller.register(fd, select.POLLIN)
    next_send = time.monotonic()
    while time.monotonic() - start < duration:
        now = time.monotonic()
        if now >= next_send:
            for fd, c in conns.items():
                if c[3] is not None:
                    continue
                try:
                    c[0].send(REQUEST[c[2] % len(REQUEST):][:1])
                    c[2] += 1
                except OSError as e:
                    if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                        c[3] = now
                        poller.unregister(fd)
            next_send += interval
        wait = max(0.0, min(next_send, start + duration) - time.monotonic())
        for fd, _ in poller.poll(wait * 1000):
            c = conns[fd]
            try:
                data = c[0].recv(4096)
            except OSError:
                data = b""
            # The server answers nothing before the headers end: any reading is the end.
            if not data:
                c[3] = time.monotonic()
                poller.unregister(fd)

    ages = [c[3] - c[1] for c in conns.values() if c[3] is not None]
    early_n = sum(1 for a in ages if a < early)
    held_closed = [a for a in ages if a >= early]
    held = len(conns) - early_n
    print("opened=%d refused=%d early=%d held=%d closed=%d closed_min=%.2f closed_max=%.2f open=%d" % (
        len(conns), refused, early_n, held, len(held_closed),
        min(held_closed) if held_closed else -1, max(held_closed) if held_closed else -1,
        held - len(held_closed)))
    for c in conns.values():
        c[0].close()


if __name__ == "__main__":
    main()
