from http.server import BaseHTTPRequestHandler, HTTPServer

from hangar_fixture_greeting import greet


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = greet("hangar").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("0.0.0.0", 3000), Handler).serve_forever()
