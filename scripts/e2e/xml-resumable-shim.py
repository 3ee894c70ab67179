"""A pass-through proxy in front of fake-gcs-server for the two requests it does not take as GCS does.

1. fake-gcs-server does not implement the XML API's resumable start (a POST to a signed object
   URL with `x-goog-resumable: start`; its issue #2254 answers it 400). This proxy answers that
   request by starting a JSON-API resumable upload on the emulator and returning its session URI
   in `Location` with 201, as GCS does.
2. A policy form POST goes to `/BUCKET/` (the URL Google's V4 POST-policy conformance vectors
   give, which GCS accepts); the emulator routes only `/BUCKET`, so the slash is dropped.

Every other request is forwarded unchanged. The emulator checks no signature either way.

    python3 xml-resumable-shim.py LISTEN_PORT EMULATOR_URL
"""

import http.server
import sys
import urllib.error
import urllib.parse
import urllib.request

EMULATOR = sys.argv[2].rstrip("/")
HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length"}


class Shim(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self):
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else None

    def reply(self, status, headers, payload):
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def forward(self, method, url, payload, headers):
        request = urllib.request.Request(url, data=payload, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request) as response:
                return response.status, response.getheaders(), response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers.items(), error.read()

    def proxy(self):
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        payload = self.body()
        if self.command == "POST" and self.headers.get("x-goog-resumable") == "start":
            bucket, _, name = urllib.parse.urlsplit(self.path).path.lstrip("/").partition("/")
            start = (
                f"{EMULATOR}/upload/storage/v1/b/{bucket}/o?uploadType=resumable"
                f"&name={urllib.parse.quote(urllib.parse.unquote(name), safe='')}"
            )
            meta = b'{"contentType": "%s"}' % self.headers.get("content-type", "application/octet-stream").encode()
            status, answer, _ = self.forward("POST", start, meta, {"Content-Type": "application/json"})
            location = dict((k.lower(), v) for k, v in answer).get("location")
            if status >= 300 or not location:
                self.reply(502, [], b"the emulator started no resumable session")
                return
            cors = [("Access-Control-Allow-Origin", "*"), ("Access-Control-Expose-Headers", "Location")]
            self.reply(201, [("Location", location)] + cors, b"")
            return
        path = self.path
        parts = urllib.parse.urlsplit(path)
        if self.command == "POST" and parts.path.count("/") == 2 and parts.path.endswith("/"):
            path = parts.path.rstrip("/") + (f"?{parts.query}" if parts.query else "")
        status, answer, data = self.forward(self.command, EMULATOR + path, payload, headers)
        self.reply(status, answer, data)

    do_GET = do_PUT = do_POST = do_DELETE = do_OPTIONS = proxy


http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Shim).serve_forever()
