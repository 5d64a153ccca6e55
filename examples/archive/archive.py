#!/usr/bin/env python3
"""archive.py - zips objects of an object store, and pulls the model out of
a training run's tar, for one user (one object ID) per instance.  Python 3
standard library only.

Environment:
  PORT             port to serve on, bound on 127.0.0.1 (set by the launcher)
  CONTAINER_ID     the object ID (any bytes; only logged, as data)
  CONTAINER_CLASS, CONTAINER_GEN   (set by the launcher; logged)
  STORE_URL        the object store's base URL; the object <name> is
                   <STORE_URL>/<name>, read with GET and written with PUT
                   (default http://127.0.0.1:8091/store)
  STORE_TIMEOUT    seconds a store connection may stay silent (default 60)
  ARCHIVE_TMPDIR   where jobs keep their temporary files (default: $TMPDIR)

API (JSON in, JSON out):
  GET  /healthz          200 "ok"
  POST /zip              {"objects": ["photos/a.jpg", ...],
                          "output": "bundles/training.zip"}
        GETs each object from the store into a private temporary directory,
        zips them (deflate; each entry named after its object), PUTs the zip
        to the store at output, and answers
          {"output": ..., "bytes": N, "sha256": "<hex>",
           "entries": ["photos/a.jpg", ...]}
  POST /extract-model    {"tar": "runs/run1.tar",
                          "output": "models/run1.safetensors",
                          "member": "run1/weights/model.safetensors"}
        ("member" is optional.)  GETs the tar (plain or compressed) into a
        private temporary directory, checks every member (absolute paths,
        "..", links pointing outside the archive and device files are
        refused: the whole tar is rejected), finds its one .safetensors file
        (or the one named by "member"), writes it out, PUTs it to the store
        at output, and answers
          {"output": ..., "bytes": N, "sha256": "<hex>",
           "member": "run1/weights/model.safetensors"}
        Only the model is ever written out, to a file name of our own
        choosing: no member name from the tar becomes a path on disk.
Errors answer {"error": "<what went wrong>", ...}:
  400  the body is not JSON, a field is missing or wrong, an object name is
       refused, the tar is not a tar, unsafe, or has no (or more than one)
       .safetensors file
  404  an object to read is not in the store ("object": its name)
  413  the request body is over 1 MiB
  502  the store failed or refused a read or a write ("object": the name)
Object names: 1 to 1024 characters, '/'-separated, without a leading '/', an
empty, '.' or '..' segment, a backslash or control characters; they are
URL-quoted into the store's URLs and never used as local paths.
Objects are streamed through files on disk, never held whole in memory.

One line per request is logged to stderr:
  [<class> <id>] <client> "<method> <path>" <status> <seconds> <details>
SIGTERM: stops accepting and exits with status 0 (a job still running is
abandoned; its temporary directory is removed).
"""

import hashlib
import http.client
import json
import os
import posixpath
import shutil
import signal
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PID = os.getpid()
BLOCK = 1 << 20
MAX_JSON = 1 << 20
MAX_NAME = 1024
MAX_OBJECTS = 10000

STORE_URL = os.environ.get("STORE_URL",
                           "http://127.0.0.1:8091/store").rstrip("/")
try:
    STORE_TIMEOUT = float(os.environ.get("STORE_TIMEOUT") or 60)
except ValueError:
    STORE_TIMEOUT = 60.0
TMPDIR = os.environ.get("ARCHIVE_TMPDIR") or None

# the store is reached directly, whatever http_proxy says
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

stopping = [False]      # set by the SIGTERM handler, polled by main()
jobs = set()            # temporary directories of running jobs
jobs_lock = threading.Lock()


def escape(raw):
    """bytes -> printable ASCII: '%' and bytes outside 0x20-0x7e as %XX"""
    return "".join(chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else "%%%02X" % b
                   for b in raw)


ID = escape(os.environb.get(b"CONTAINER_ID", b""))
CLASS = escape(os.environb.get(b"CONTAINER_CLASS", b"archive"))


def log(msg):
    try:
        sys.stderr.write("[%s %s] %s\n" % (CLASS, ID, msg))
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


class JobError(Exception):
    """an answer other than 200: status, message, extra JSON fields"""

    def __init__(self, status, message, **extra):
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


# ---- object names and the store -------------------------------------------

def check_name(value, field):
    """an object name from the request, or JobError 400"""
    if not isinstance(value, str) or not value:
        raise JobError(400, "%s must be a non-empty string" % field)
    if len(value) > MAX_NAME:
        raise JobError(400, "%s is longer than %d characters" % (field, MAX_NAME))
    if value.startswith("/"):
        raise JobError(400, "%s must not start with '/'" % field, object=value)
    if "\\" in value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise JobError(400, "%s has a backslash or a control character"
                       % field, object=value)
    if any(seg in ("", ".", "..") for seg in value.split("/")):
        raise JobError(400, "%s has an empty, '.' or '..' segment" % field,
                       object=value)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise JobError(400, "%s is not valid Unicode" % field, object=value)
    return value


def store_url(name):
    return STORE_URL + "/" + urllib.parse.quote(name, safe="/")


class HashingReader:
    """a file read by http.client while sending: hashes and counts"""

    def __init__(self, f):
        self.f = f
        self.sha = hashlib.sha256()
        self.bytes = 0

    def read(self, n=-1):
        # http.client asks for 8 KiB at a time: hand it bigger blocks, but
        # never the whole file
        data = self.f.read(BLOCK if n is None or n < 0 else max(n, 1 << 18))
        self.sha.update(data)
        self.bytes += len(data)
        return data


def store_get(name, path):
    """GETs the object name into the file path; returns its size"""
    try:
        with opener.open(store_url(name), timeout=STORE_TIMEOUT) as resp, \
                open(path, "wb") as out:
            size = 0
            while True:
                data = resp.read(BLOCK)
                if not data:
                    break
                out.write(data)
                size += len(data)
            return size
    except urllib.error.HTTPError as e:
        if e.code == 404:
            raise JobError(404, "object not found in the store: %s" % name,
                           object=name)
        raise JobError(502, "the store answered %d to GET %s" % (e.code, name),
                       object=name, store_status=e.code)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        raise JobError(502, "reading %s from the store failed: %s"
                       % (name, getattr(e, "reason", e)), object=name)


def store_put(name, path):
    """PUTs the file path to the object name; returns (size, sha256 hex)"""
    size = os.path.getsize(path)
    try:
        with open(path, "rb") as f:
            body = HashingReader(f)
            req = urllib.request.Request(
                store_url(name), data=body, method="PUT",
                headers={"Content-Length": str(size),
                         "Content-Type": "application/octet-stream"})
            with opener.open(req, timeout=STORE_TIMEOUT) as resp:
                resp.read()
    except urllib.error.HTTPError as e:
        raise JobError(502, "the store answered %d to PUT %s" % (e.code, name),
                       object=name, store_status=e.code)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        raise JobError(502, "writing %s to the store failed: %s"
                       % (name, getattr(e, "reason", e)), object=name)
    if body.bytes != size:
        raise JobError(502, "%s changed while it was sent" % name, object=name)
    return size, body.sha.hexdigest()


# ---- the jobs --------------------------------------------------------------

def job_zip(req, tmp):
    objects = req.get("objects")
    if not isinstance(objects, list) or not objects:
        raise JobError(400, "objects must be a non-empty list of names")
    if len(objects) > MAX_OBJECTS:
        raise JobError(400, "more than %d objects" % MAX_OBJECTS)
    names = [check_name(o, "objects[%d]" % i) for i, o in enumerate(objects)]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise JobError(400, "an object is listed twice: %s" % dup, object=dup)
    output = check_name(req.get("output"), "output")

    zpath = os.path.join(tmp, "out.zip")
    with zipfile.ZipFile(zpath, "w", compression=zipfile.ZIP_DEFLATED,
                         compresslevel=6, allowZip64=True) as zf:
        for i, name in enumerate(names):
            # the local file is named by its index, never by the object name
            local = os.path.join(tmp, "object-%d" % i)
            store_get(name, local)
            zf.write(local, arcname=name)
            os.unlink(local)
    size, sha = store_put(output, zpath)
    return {"output": output, "bytes": size, "sha256": sha, "entries": names}


def member_problem(m, dest):
    """why the tar member m is unsafe to unpack into the empty directory
    dest, or None"""
    name = m.name
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in name.split("/") or "\\" in name:
        return "'..' or a backslash in the path"
    if m.isdev():
        return "device or fifo"
    if m.issym():
        target = m.linkname
        if target.startswith("/"):
            return "symbolic link to an absolute path"
        resolved = posixpath.normpath(
            posixpath.join(posixpath.dirname(name), target))
        if resolved == ".." or resolved.startswith("../"):
            return "symbolic link pointing outside the archive"
    if m.islnk():
        target = m.linkname
        if target.startswith("/") or ".." in target.split("/"):
            return "hard link pointing outside the archive"
    if hasattr(tarfile, "data_filter"):
        # the standard library's own policy (Python >= 3.11.4 / 3.12)
        try:
            tarfile.data_filter(m, dest)
        except tarfile.FilterError as e:
            return str(e)
    return None


def job_extract_model(req, tmp):
    tar_name = check_name(req.get("tar"), "tar")
    output = check_name(req.get("output"), "output")
    wanted = req.get("member")
    if wanted is not None and (not isinstance(wanted, str) or not wanted):
        raise JobError(400, "member must be a non-empty string")

    tpath = os.path.join(tmp, "in.tar")
    store_get(tar_name, tpath)
    try:
        tf = tarfile.open(tpath, "r:*")
    except (tarfile.TarError, OSError, EOFError):
        raise JobError(400, "%s is not a tar archive (plain, gzip, bzip2 or "
                       "xz)" % tar_name, object=tar_name)
    with tf:
        try:
            members = tf.getmembers()
        except (tarfile.TarError, OSError, EOFError) as e:
            raise JobError(400, "%s is a damaged tar archive: %s"
                           % (tar_name, e), object=tar_name)
        dest = os.path.join(tmp, "unpack")     # stays empty
        os.mkdir(dest)
        for m in members:
            problem = member_problem(m, dest)
            if problem:
                raise JobError(400, "unsafe member in %s: %s" % (tar_name,
                                                                 problem),
                               object=tar_name, member=m.name)
        # a name that occurs twice means its last occurrence, as with tar -x
        found = {}
        for m in members:
            if m.name.lower().endswith(".safetensors") and \
                    (m.isfile() or m.issym() or m.islnk()):
                found[m.name.rstrip("/")] = m
        if wanted is not None:
            if wanted not in found:
                raise JobError(400, "no .safetensors file %s in %s"
                               % (wanted, tar_name), object=tar_name,
                               member=wanted)
            model = found[wanted]
        elif not found:
            raise JobError(400, "no .safetensors file in %s" % tar_name,
                           object=tar_name)
        elif len(found) > 1:
            raise JobError(400, "%d .safetensors files in %s: name the one to "
                           "extract with \"member\"" % (len(found), tar_name),
                           object=tar_name, candidates=sorted(found))
        else:
            model = next(iter(found.values()))

        mpath = os.path.join(tmp, "model")
        try:
            src = tf.extractfile(model)     # follows links inside the tar
        except (KeyError, RecursionError):
            src = None
        except (tarfile.TarError, OSError, EOFError) as e:
            raise JobError(400, "cannot read %s from %s: %s"
                           % (model.name, tar_name, e), object=tar_name,
                           member=model.name)
        if src is None:
            raise JobError(400, "%s in %s is not a regular file (or a link "
                           "to one inside the tar)" % (model.name, tar_name),
                           object=tar_name, member=model.name)
        try:
            with src, open(mpath, "wb") as out:
                shutil.copyfileobj(src, out, BLOCK)
        except (tarfile.TarError, EOFError) as e:
            raise JobError(400, "%s in %s is truncated: %s"
                           % (model.name, tar_name, e), object=tar_name,
                           member=model.name)
    size, sha = store_put(output, mpath)
    return {"output": output, "bytes": size, "sha256": sha,
            "member": model.name}


JOBS = {"/zip": job_zip, "/extract-model": job_extract_model}


# ---- HTTP ------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"       # keep-alive with the gateway
    # headers and body go out in separate writes: without this, Nagle and
    # delayed ACKs hold each answer on a kept-alive connection for 40 ms
    disable_nagle_algorithm = True
    server_version = "ngxc-archive"
    sys_version = ""

    def log_request(self, code="-", size="-"):
        pass                            # one line per request, in handle_one

    def log_message(self, fmt, *args):
        log("%s %s" % (self.client_address[0], fmt % args))

    def send(self, status, obj=None, text=None):
        if text is not None:
            body, ctype = text.encode(), "text/plain; charset=utf-8"
        else:
            body, ctype = (json.dumps(obj) + "\n").encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Instance-Pid", str(PID))
        self.send_header("X-Container-Id", ID)
        if status == 405:
            self.send_header("Allow", "POST" if self.route in JOBS else "GET")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.status = status

    def read_body(self):
        """the request body (Content-Length or chunked), at most MAX_JSON"""
        chunks, total = [], 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                line = self.rfile.readline(1026)
                try:
                    size = int(line.split(b";", 1)[0], 16)
                except ValueError:
                    self.close_connection = True
                    raise JobError(400, "bad chunked request body")
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n",
                                                             b""):
                        pass
                    break
                total += size
                if total > MAX_JSON:
                    self.close_connection = True
                    raise JobError(413, "request body over %d bytes" % MAX_JSON)
                data = self.rfile.read(size)
                if len(data) != size:
                    self.close_connection = True
                    raise JobError(400, "request body truncated")
                chunks.append(data)
                self.rfile.readline(3)
            return b"".join(chunks)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            raise JobError(400, "bad Content-Length")
        if length > MAX_JSON:
            self.close_connection = True
            raise JobError(413, "request body over %d bytes" % MAX_JSON)
        data = self.rfile.read(length)
        if len(data) != length:
            self.close_connection = True
            raise JobError(400, "request body truncated")
        return data

    def handle_one(self):
        start = time.monotonic()
        self.route = self.path.split("?", 1)[0]
        self.status = 0
        detail = ""
        try:
            try:
                body = self.read_body()
                if self.route == "/healthz":
                    if self.command not in ("GET", "HEAD"):
                        raise JobError(405, "use GET")
                    self.send(200, text="ok\n")
                elif self.route == "/" and self.command in ("GET", "HEAD"):
                    self.send(200, text="archive container: POST /zip, "
                              "POST /extract-model (see archive.py)\n")
                elif self.route not in JOBS:
                    raise JobError(404, "no such endpoint: POST /zip or "
                                   "POST /extract-model")
                elif self.command != "POST":
                    raise JobError(405, "use POST")
                else:
                    try:
                        req = json.loads(body)
                    except (ValueError, UnicodeDecodeError) as e:
                        raise JobError(400, "the body is not JSON: %s" % e)
                    if not isinstance(req, dict):
                        raise JobError(400, "the body must be a JSON object")
                    result = self.run_job(JOBS[self.route], req)
                    detail = "%s %d bytes" % (result["output"], result["bytes"])
                    self.send(200, result)
            except JobError as e:
                detail = e.message
                self.send(e.status, dict({"error": e.message}, **e.extra))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        log('%s "%s %s" %d %.3fs %s' % (
            self.client_address[0], escape(self.command.encode()),
            escape(self.path.encode("latin-1", "replace")).replace("%25", "%"),
            self.status, time.monotonic() - start,
            escape(detail.encode("utf-8", "replace"))))

    def run_job(self, job, req):
        tmp = tempfile.mkdtemp(prefix="archive-job-", dir=TMPDIR)
        with jobs_lock:
            jobs.add(tmp)
        try:
            return job(req, tmp)
        except OSError as e:
            raise JobError(500, "local file error: %s" % e.strerror)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            with jobs_lock:
                jobs.discard(tmp)

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
        sys.stderr.write("archive.py: PORT must be set to a port number\n")
        return 2

    def on_term(signum, frame):
        stopping[0] = True
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    server = Server(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                     daemon=True).start()
    log("pid %d listening on 127.0.0.1:%d, store %s" % (PID, port, STORE_URL))
    while not stopping[0]:
        time.sleep(0.1)
    server.shutdown()
    server.server_close()
    with jobs_lock:
        for tmp in jobs:
            shutil.rmtree(tmp, ignore_errors=True)
    log("stopping (SIGTERM)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
