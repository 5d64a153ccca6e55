#!/usr/bin/env python3
"""counter.py - a per-ID counter kept in memory: the smallest container that
shows an object ID sticking to one instance (like a Durable Object).  Every
request for one ID reaches the same process, so the count goes 1, 2, 3...;
when the instance is stopped for idleness the count is gone and the next
instance starts again from 0.  Python 3 standard library only.

Environment (set by the launcher): PORT (served on 127.0.0.1), CONTAINER_ID
(the object ID, any bytes, only ever treated as data), CONTAINER_CLASS,
CONTAINER_GEN.

API (text/plain answers end with a newline):
  GET  /healthz   200 "ok"
  GET  /          the current count, without counting:  "<count>\n"
  GET  /hit       add one and answer the new count:     "<count>\n"
  POST /hit       the same (a request body, if any, is read and ignored)
  GET  /json      {"id": "<id>", "class": ..., "gen": ..., "count": N,
                   "pid": P, "started": <unix time>}
                  (the id decoded as UTF-8, invalid bytes as U+FFFD)
  anything else   404 / 405
Every answer has the headers X-Instance-Pid, X-Container-Id (the ID with
'%', and any byte outside printable ASCII, as %XX) and X-Count.
One line per request is logged to stderr: [<class> <id>] <client> "<method>
<path>" <status> <seconds>.  SIGTERM: exits with status 0.
"""

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PID = os.getpid()
STARTED = time.time()


def escape(raw):
    """bytes -> printable ASCII: '%' and bytes outside 0x20-0x7e as %XX"""
    return "".join(chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else "%%%02X" % b
                   for b in raw)


ID_RAW = os.environb.get(b"CONTAINER_ID", b"")
ID = escape(ID_RAW)
CLASS = escape(os.environb.get(b"CONTAINER_CLASS", b"counter"))
GEN = escape(os.environb.get(b"CONTAINER_GEN", b""))

count = 0
count_lock = threading.Lock()
stopping = [False]      # set by the SIGTERM handler, polled by main()


def log(msg):
    try:
        sys.stderr.write("[%s %s] %s\n" % (CLASS, ID, msg))
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"       # keep-alive with the gateway
    # headers and body go out in separate writes: without this, Nagle and
    # delayed ACKs hold each answer on a kept-alive connection for 40 ms
    disable_nagle_algorithm = True
    server_version = "ngxc-counter"
    sys_version = ""

    def log_request(self, code="-", size="-"):
        pass                            # one line per request, in handle_one

    def log_message(self, fmt, *args):
        log("%s %s" % (self.client_address[0], fmt % args))

    def send(self, status, body, ctype="text/plain; charset=utf-8", n=None):
        body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Instance-Pid", str(PID))
        self.send_header("X-Container-Id", ID)
        self.send_header("X-Count", str(count if n is None else n))
        if status == 405:
            self.send_header("Allow", "GET, POST" if self.route == "/hit"
                             else "GET")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.status = status

    def drain(self):
        """reads and discards a request body (Content-Length or chunked)"""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                line = self.rfile.readline(1026)
                try:
                    size = int(line.split(b";", 1)[0], 16)
                except ValueError:
                    self.close_connection = True
                    return False
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n",
                                                             b""):
                        pass
                    return True
                while size > 0:
                    data = self.rfile.read(min(size, 65536))
                    if not data:
                        self.close_connection = True
                        return False
                    size -= len(data)
                self.rfile.readline(3)
        try:
            left = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            left = -1
        if left < 0:
            self.close_connection = True
            return False
        while left > 0:
            data = self.rfile.read(min(left, 65536))
            if not data:
                self.close_connection = True
                return False
            left -= len(data)
        return True

    def handle_one(self):
        global count
        start = time.monotonic()
        self.route = self.path.split("?", 1)[0]
        self.status = 0
        try:
            if not self.drain():
                self.send(400, "bad request body\n")
            elif self.route == "/healthz":
                self.send(200, "ok\n") if self.command in ("GET", "HEAD") \
                    else self.send(405, "method not allowed\n")
            elif self.route == "/hit":
                if self.command in ("GET", "POST"):
                    with count_lock:
                        count += 1
                        n = count
                    self.send(200, "%d\n" % n, n=n)
                else:
                    self.send(405, "method not allowed\n")
            elif self.command not in ("GET", "HEAD"):
                self.send(405 if self.route in ("/", "/json") else 404,
                          "method not allowed\n" if self.route in ("/", "/json")
                          else "not found\n")
            elif self.route == "/":
                self.send(200, "%d\n" % count)
            elif self.route == "/json":
                n = count
                self.send(200, json.dumps({
                    "id": ID_RAW.decode("utf-8", "replace"),
                    "class": CLASS, "gen": GEN, "count": n, "pid": PID,
                    "started": int(STARTED)}) + "\n",
                    "application/json", n=n)
            else:
                self.send(404, "not found\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        log('%s "%s %s" %d %.3f' % (
            self.client_address[0], escape(self.command.encode()),
            escape(self.path.encode("latin-1", "replace")).replace("%25", "%"),
            self.status, time.monotonic() - start))

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = handle_one


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # the requests held while it woke all arrive at once: with Python's
    # default backlog of 5, the rest wait a second for SYN retries
    request_queue_size = 128


def main():
    port = int(os.environ.get("PORT") or 0)
    if not 0 < port < 65536:
        sys.stderr.write("counter.py: PORT must be set to a port number\n")
        return 2

    def on_term(signum, frame):
        stopping[0] = True
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    server = Server(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                     daemon=True).start()
    log("pid %d listening on 127.0.0.1:%d" % (PID, port))
    while not stopping[0]:
        time.sleep(0.1)
    server.shutdown()
    server.server_close()
    log("stopping (SIGTERM), count was %d" % count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
