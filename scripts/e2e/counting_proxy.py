"""A reverse proxy that counts what reaches storage: every request is forwarded to UPSTREAM
with its method, path, headers (Host too, so that signatures made for the proxy's address still
verify) and body; GET /__count?path=P answers how many GETs and HEADs for path P went through.
  python3 counting_proxy.py PORT UPSTREAM_URL
"""
import http.client
import json
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, upstream = int(sys.argv[1]), urllib.parse.urlsplit(sys.argv[2])
counts, lock = {}, threading.Lock()


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def forward(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/__count":
            asked = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).get("path", [""])[0]
            with lock:
                body = json.dumps({"reads": counts.get(asked, 0)}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.command in ("GET", "HEAD"):
            with lock:
                counts[path] = counts.get(path, 0) + 1
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
        connection.request(self.command, self.path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        self.send_response(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in ("connection", "keep-alive", "transfer-encoding", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        connection.close()

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_OPTIONS = forward


ThreadingHTTPServer(("127.0.0.1", port), Proxy).serve_forever()
