#!/usr/bin/env python3
"""echo.py - the test suite's container: tells a test who answered and what
it received.  Python 3 standard library only.

Environment (set by the launcher):
  PORT             port to serve on, bound on 127.0.0.1 (required)
  CONTAINER_ID     the object ID (any bytes; only ever treated as data)
  CONTAINER_CLASS  the class name
  CONTAINER_GEN    the generation of the instance record
Knobs for tests (all optional):
  LISTEN_DELAY     seconds (float) to sleep BEFORE binding the port
  HEALTHZ_DELAY    seconds (float) after binding during which /healthz
                   answers 503 (the port accepts, but the instance is not
                   ready yet)
  IGNORE_SIGTERM   "1": ignore SIGTERM (so the launcher has to SIGKILL)
  EXIT_AFTER       seconds (float): exit by itself (status EXIT_STATUS,
                   default 0) this long after binding
  EXIT_STATUS      the status for EXIT_AFTER and for GET /exit

API (every method on every path, unless listed):
  GET  /healthz           200 "ok\n" (503 "starting\n" during HEALTHZ_DELAY)
  ANY  <anything>         200, text/plain body of lines (in this order):
                            method=<M>
                            path=<path?query, as received>
                            id=<CONTAINER_ID>
                            pid=<pid>
                            bytes=<request body length>
                            sha256=<hex sha256 of the request body>
                            class=<CONTAINER_CLASS>
                            gen=<CONTAINER_GEN>
                            peer=<the port of the gateway's end of the
                                 connection: the same on a reused one>
                          The request body is read whether it comes with
                          Content-Length or Transfer-Encoding: chunked, and
                          hashed as it arrives (never held whole in memory).
                          The id is printed as is when it is printable ASCII;
                          any byte outside 0x20-0x7e, and '%', is printed as
                          %XX (so an ID with a newline cannot forge lines).
                          HEAD answers the same headers without a body.
  ANY  /sleep?s=N         sleeps N seconds (float), then answers as above
  GET  /stream?bytes=N    N bytes, generated on the fly: byte k of the body
       [&cl=1]            is k mod 256.  Chunked by default, with
       [&chunk=K]         Content-Length when cl=1; written K bytes at a time
       [&interval=S]      (default 65536), sleeping S seconds (float) between
                          writes (default 0)
  ANY  /status?code=N     answers status N with the echo body
  ANY  /exit[?code=N]     answers the echo body, then the process exits with
                          status N (default EXIT_STATUS or 0)
  ANY  /crash[?code=N]    the process exits at once with status N, with no
                          answer at all
Every response has the headers
  X-Instance-Pid: <pid>
  X-Container-Id: <id, escaped as above>
  X-Container-Class, X-Container-Gen
and one line per request is logged to stderr:
  [<class> <id>] <client> "<method> <path>" <status> <body bytes> <seconds>
SIGTERM: stops accepting, exits with status 0.
"""

import hashlib
import os
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PID = os.getpid()


def escape_id(raw, keep=b""):
    """bytes -> str: printable ASCII kept, '%' and anything else as %XX"""
    return "".join(chr(b) if 0x20 <= b <= 0x7E and (b != 0x25 or b in keep)
                   else "%%%02X" % b for b in raw)


def env_float(name, default=0.0):
    try:
        return float(os.environ.get(name, "") or default)
    except ValueError:
        return default


ID_RAW = os.environb.get(b"CONTAINER_ID", b"")
ID = escape_id(ID_RAW)
CLASS = escape_id(os.environb.get(b"CONTAINER_CLASS", b"echo"))
GEN = escape_id(os.environb.get(b"CONTAINER_GEN", b""))
EXIT_STATUS = int(env_float("EXIT_STATUS", 0))

# set by the signal handler and by GET /exit; polled by the main thread (a
# signal handler must not take locks the interrupted thread may hold)
stopping = [False]
exit_status = [0]


def log(msg):
    try:
        sys.stderr.write("[%s %s] %s\n" % (CLASS, ID, msg))
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


class BadRequest(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes: without this, Nagle and
    # delayed ACKs hold each answer on a kept-alive connection for 40 ms
    disable_nagle_algorithm = True
    server_version = "ngxc-echo"
    sys_version = ""

    # ---- request bodies --------------------------------------------------

    def body_chunks(self):
        """yields the request body, by Content-Length or chunked"""
        te = self.headers.get("Transfer-Encoding", "")
        if te:
            if te.strip().lower() != "chunked":
                raise BadRequest("unsupported transfer-encoding")
            while True:
                line = self.rfile.readline(1026)
                if not line.endswith(b"\n"):
                    raise BadRequest("bad chunk size line")
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise BadRequest("bad chunk size")
                if size < 0:
                    raise BadRequest("bad chunk size")
                if size == 0:
                    break
                while size:
                    data = self.rfile.read(min(size, 65536))
                    if not data:
                        raise BadRequest("body truncated")
                    size -= len(data)
                    yield data
                if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                    raise BadRequest("bad chunk end")
            while True:        # trailers, up to the empty line
                line = self.rfile.readline(65537)
                if line in (b"\r\n", b"\n", b""):
                    break
            return
        cl = self.headers.get("Content-Length")
        if cl is None:
            return
        try:
            left = int(cl)
        except ValueError:
            raise BadRequest("bad content-length")
        if left < 0:
            raise BadRequest("bad content-length")
        while left:
            data = self.rfile.read(min(left, 65536))
            if not data:
                raise BadRequest("body truncated")
            left -= len(data)
            yield data

    # ---- responses -------------------------------------------------------

    def common_headers(self):
        self.send_header("X-Instance-Pid", str(PID))
        self.send_header("X-Container-Id", ID)
        self.send_header("X-Container-Class", CLASS)
        self.send_header("X-Container-Gen", GEN)

    def reply(self, status, body, ctype="text/plain"):
        if status in (204, 304):
            body = b""
        self.send_response(status)
        self.common_headers()
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.sent = len(body)

    def log_request(self, code="-", size="-"):
        pass                    # logged once, at the end, by handle_any

    def log_message(self, fmt, *args):
        log("%s %s" % (self.client_address[0], fmt % args))

    # ---- dispatch --------------------------------------------------------

    def __getattr__(self, name):
        # BaseHTTPRequestHandler calls do_<METHOD>: answer every method
        if name.startswith("do_"):
            return self.handle_any
        raise AttributeError(name)

    def handle_any(self):
        start = time.monotonic()
        self.sent = 0
        status = 200
        try:
            status = self.route()
        except BadRequest as e:
            status = 400
            self.close_connection = True
            self.reply(400, ("bad request: %s\n" % e).encode())
        except (BrokenPipeError, ConnectionResetError):
            status = 499
            self.close_connection = True
        log('%s "%s %s" %d %d %.3f' % (
            self.client_address[0], escape_id(self.command.encode()),
            escape_id(self.path.encode("latin-1", "replace"), b"%"),
            status, self.sent, time.monotonic() - start))

    def route(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)

        def q(name, default):
            try:
                return float(query.get(name, [default])[0])
            except ValueError:
                raise BadRequest("bad %s" % name)

        if url.path == "/healthz" and self.command in ("GET", "HEAD"):
            self.drain()
            if time.monotonic() < ready_at:
                self.reply(503, b"starting\n")
                return 503
            self.reply(200, b"ok\n")
            return 200

        if url.path == "/stream" and self.command in ("GET", "HEAD"):
            self.drain()
            return self.stream(int(q("bytes", 0)), q("cl", 0) == 1,
                               int(q("chunk", 65536)), q("interval", 0))

        status = 200
        if url.path == "/sleep":
            delay = q("s", 0)
            if delay > 0:
                time.sleep(delay)
        elif url.path == "/status":
            status = int(q("code", 200))
            if not 200 <= status <= 599:
                raise BadRequest("code must be 200..599")

        h = hashlib.sha256()
        n = 0
        for data in self.body_chunks():
            h.update(data)
            n += len(data)
        body = ("method=%s\npath=%s\nid=%s\npid=%d\nbytes=%d\nsha256=%s\n"
                "class=%s\ngen=%s\npeer=%d\n" % (
                    self.command, self.path, ID, PID, n, h.hexdigest(),
                    CLASS, GEN, self.client_address[1])).encode(
                        "latin-1", "replace")
        if url.path == "/crash":
            # the process dies at once, with no answer: an instance lost
            # in the middle of a request
            os._exit(int(q("code", EXIT_STATUS)))
        if url.path == "/exit":
            self.close_connection = True
            exit_status[0] = int(q("code", EXIT_STATUS))
            self.reply(status, body)
            self.wfile.flush()
            stopping[0] = True
            return status
        self.reply(status, body)
        return status

    def drain(self):
        for _ in self.body_chunks():
            pass

    def stream(self, total, with_length, chunk, interval):
        if total < 0 or chunk <= 0:
            raise BadRequest("bytes must be >= 0 and chunk > 0")
        chunk = min(chunk, 1 << 20)
        pattern = bytes(range(256)) * ((chunk + 511) // 256)
        self.send_response(200)
        self.common_headers()
        self.send_header("Content-Type", "application/octet-stream")
        if with_length:
            self.send_header("Content-Length", str(total))
        else:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command == "HEAD":
            if not with_length:
                self.close_connection = True
            return 200
        off = 0
        while off < total:
            n = min(chunk, total - off)
            start = off % 256
            data = pattern[start:start + n]
            if with_length:
                self.wfile.write(data)
            else:
                self.wfile.write(b"%x\r\n%s\r\n" % (n, data))
            self.wfile.flush()
            off += n
            self.sent = off
            if interval > 0 and off < total:
                time.sleep(interval)
        if not with_length:
            self.wfile.write(b"0\r\n\r\n")
        return 200


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def on_sigterm(signum, frame):
    stopping[0] = True


def wait_stop(seconds):
    """sleeps until asked to stop or seconds passed; True if asked to stop"""
    end = time.monotonic() + seconds
    while not stopping[0] and time.monotonic() < end:
        time.sleep(min(0.05, max(0.0, end - time.monotonic())))
    return stopping[0]


ready_at = 0.0


def main():
    global ready_at
    port = int(os.environ.get("PORT", "0") or 0)
    if not 0 < port < 65536:
        sys.stderr.write("echo.py: PORT must be set to a port number\n")
        return 2
    signal.signal(signal.SIGTERM,
                  signal.SIG_IGN if os.environ.get("IGNORE_SIGTERM") == "1"
                  else on_sigterm)
    signal.signal(signal.SIGINT, on_sigterm)

    delay = env_float("LISTEN_DELAY")
    if delay > 0:
        log("sleeping %.3fs before listening" % delay)
        if wait_stop(delay):
            return 0

    server = Server(("127.0.0.1", port), Handler)
    ready_at = time.monotonic() + env_float("HEALTHZ_DELAY")
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                     daemon=True).start()
    log("pid %d listening on 127.0.0.1:%d" % (PID, port))

    exit_after = env_float("EXIT_AFTER")
    if exit_after > 0 and not wait_stop(exit_after):
        exit_status[0] = EXIT_STATUS
        stopping[0] = True
    while not wait_stop(3600):
        pass
    server.shutdown()
    server.server_close()
    log("exiting with status %d" % exit_status[0])
    return exit_status[0]


if __name__ == "__main__":
    sys.exit(main())
