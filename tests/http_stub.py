#!/usr/bin/env python3
"""http_stub.py: the local web server that tests/test_url.c downloads from (src/io/url.c).

Plain python3 standard library. It listens on 127.0.0.1 only, on ports the system picks,
so concurrent test runs never collide, and writes them to --port-file (atomically, once
every listener is up) as lines "NAME PORT":
  http   the routes below over plain HTTP/1.1
  https  the same routes over TLS with tests/data/tls/localhost.crt (self-signed, valid for
         127.0.0.1 and localhost until 2126); its /to-http redirects to the http listener
  stall  a listening socket whose accept queue the stub fills itself and never drains, so
         a new connection's SYN goes unanswered: the connect timeout's test
It exits on SIGTERM, or by itself after --lifetime seconds (default 300) in case the test
that started it died without stopping it.

Routes (the test's expectations live in test_url.c):
  /photo.jpg, /anim.gif, /clip.mp4   fixtures from tests/data/ with their content types
  /query.jpg?x=1                     the photo again (any query string)
  /path/<anything>                   tests/data/images/plain.webp (image/webp)
  /page.html                         a small HTML page (text/html)
  /cd, /cd-star, /cd-evil, /cd-dots, /cd-hidden, /cd-long
                                     a PNG with a Content-Disposition naming it (see CD)
  /missing (and any unknown path)    404 Not Found
  /no-reason                         503 with an empty reason phrase
  /redirect                          302 to /photo.jpg
  /redirect-chain/N                  N redirects in a row, then the photo
  /loop                              redirects to itself forever
  /redirect-ftp, /redirect-file      302 to an ftp:// or file:// URL
  /to-http                           302 to http://127.0.0.1:<http port>/photo.jpg
  /to-https                          302 to https://127.0.0.1:<https port>/photo.jpg
  /big                               announces a 1 TB Content-Length, sends a little, closes
  /big-chunked                       chunked, no length, streams up to 64 MiB of zeros
  /truncated                         announces 1000 bytes, sends 100, closes
  /slow                              headers and a little body, then stalls (--stall s)
  /slow-headers                      accepts the request, then stalls before any header
"""
import argparse
import http.server
import os
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")

FILES = {
    "/photo.jpg": ("images/plain.jpg", "image/jpeg"),
    "/query.jpg": ("images/plain.jpg", "image/jpeg"),
    "/anim.gif": ("media/anim.gif", "image/gif"),
    "/clip.mp4": ("media/clip.mp4", "video/mp4"),
}

# Content-Disposition values, all with tests/data/images/plain.png as the body.
CD = {
    "/cd": 'attachment; filename="holiday photo.png"',
    "/cd-star": "attachment; filename=\"fallback.png\"; filename*=UTF-8''%C3%A9t%C3%A9%20photo.png",
    "/cd-evil": 'attachment; filename="../../etc/passwd"',
    "/cd-dots": 'attachment; filename=".."',
    "/cd-hidden": "attachment; filename=.hidden",
    "/cd-long": 'attachment; filename="' + "x" * 300 + '.png"',
}

HTML = b"<!doctype html><title>not an image</title><p>hello</p>\n"


def read(rel):
    with open(os.path.join(DATA, rel), "rb") as f:
        return f.read()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "http_stub"
    sys_version = ""

    def log_message(self, fmt, *args):  # quiet: the test's output is what matters
        pass

    def send_body(self, body, ctype, extra=()):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def redirect(self, location, code=302):
        self.send_response(code)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def stall(self):
        # Holds the connection open without sending; ends early if the client goes away.
        self.connection.settimeout(self.server.stall_s)
        try:
            self.connection.recv(1)
        except (OSError, socket.timeout):
            pass
        self.close_connection = True

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        try:
            self.route(path)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True

    def route(self, path):
        if path in FILES:
            rel, ctype = FILES[path]
            self.send_body(read(rel), ctype)
        elif path.startswith("/path/"):
            self.send_body(read("images/plain.webp"), "image/webp")
        elif path == "/page.html":
            self.send_body(HTML, "text/html; charset=utf-8")
        elif path in CD:
            self.send_body(read("images/plain.png"), "image/png", [("Content-Disposition", CD[path])])
        elif path == "/no-reason":
            self.send_response_only(503, "")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif path == "/redirect":
            self.redirect("/photo.jpg")
        elif path.startswith("/redirect-chain/"):
            n = int(path.rsplit("/", 1)[1])
            self.redirect("/redirect-chain/%d" % (n - 1) if n > 1 else "/photo.jpg")
        elif path == "/loop":
            self.redirect("/loop")
        elif path == "/redirect-ftp":
            self.redirect("ftp://127.0.0.1/photo.jpg")
        elif path == "/redirect-file":
            self.redirect("file:///etc/passwd")
        elif path == "/to-http":
            self.redirect("http://127.0.0.1:%d/photo.jpg" % self.server.ports["http"])
        elif path == "/to-https":
            self.redirect("https://127.0.0.1:%d/photo.jpg" % self.server.ports["https"])
        elif path == "/big":
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", str(10**12))
            self.end_headers()
            self.wfile.write(b"\xff\xd8" + b"\0" * 1000)
            self.close_connection = True
        elif path == "/big-chunked":
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"\0" * 65536
            for _ in range(1024):  # 64 MiB at most, unless the client hangs up first
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/truncated":
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"\xff\xd8" + b"\0" * 98)
            self.wfile.flush()
            self.close_connection = True
        elif path == "/slow":
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"\xff\xd8" + b"\0" * 8)
            self.wfile.flush()
            self.stall()
        elif path == "/slow-headers":
            self.stall()
        else:
            body = b"not found\n"
            self.send_response(404)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # a stalled handler must not keep the process alive
    allow_reuse_address = False

    def handle_error(self, request, client_address):
        pass  # clients that hang up or reject the certificate are expected here


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--lifetime", type=float, default=300)
    ap.add_argument("--stall", type=float, default=30, help="seconds /slow and /slow-headers stall")
    args = ap.parse_args()

    ports = {}
    servers = []
    for name in ("http", "https"):
        srv = Server(("127.0.0.1", 0), Handler)
        if name == "https":
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(os.path.join(DATA, "tls/localhost.crt"), os.path.join(DATA, "tls/localhost.key"))
            # The handshake then happens in the handler's thread, not in accept(): a client
            # that stalls or fails it cannot block the listener.
            srv.socket = ctx.wrap_socket(srv.socket, server_side=True, do_handshake_on_connect=False)
        srv.ports = ports
        srv.stall_s = args.stall
        ports[name] = srv.server_address[1]
        servers.append(srv)

    # The stall listener: a backlog of 0 holds one connection, which the stub makes itself
    # (plus a spare); the kernel then drops further SYNs, so a client's connect hangs.
    stall = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stall.bind(("127.0.0.1", 0))
    stall.listen(0)
    ports["stall"] = stall.getsockname()[1]
    fillers = []
    for _ in range(2):
        f = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        f.setblocking(False)
        try:
            f.connect(("127.0.0.1", ports["stall"]))
        except BlockingIOError:
            pass
        fillers.append(f)

    for srv in servers:
        threading.Thread(target=srv.serve_forever, daemon=True).start()

    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        for name in ("http", "https", "stall"):
            f.write("%s %d\n" % (name, ports[name]))
    os.rename(tmp, args.port_file)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    time.sleep(args.lifetime)


if __name__ == "__main__":
    main()
