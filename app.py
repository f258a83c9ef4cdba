"""A local web page to try a trained model: draw a word or drop a photo, and see it read.

    python app.py                       # the newest model under Models/, on http://127.0.0.1:8000
    python app.py --model DIR --port 8080
    python app.py --host 0.0.0.0        # let other machines in too (it warns: there is no password)

GET / serves the page, static/ (plain HTML, CSS and JavaScript: no build step, nothing from the
internet). The page sends the image's bytes to POST /api/read?decoder=NAME&name=FILE, which answers
with the JSON that inferenceModel.py --page writes (words with box, text, confidence and line; lines;
text) plus "decoder", "seconds", and the reading as ALTO and PAGE XML ("alto_xml", "page_xml", naming
the image FILE) for the page to offer as downloads. Every error, bad uploads included, is a 4xx with
{"error": "..."}.

It is Python's own ThreadingHTTPServer (one thread per request) around ImageToWordModel.read_page:
a page, one POST route and a few fixed files need no web framework.
"""
import argparse
import io
import json
import os
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from PIL import Image

from htr.images import UnreadableImage, decode_image
from htr.pages.reading import MAX_PAGE_PIXELS
from htr.pages.xml_output import page_alto, page_pagexml
from htr.recognizer import CORES, ImageToWordModel, ModelFileError, newest_model_dir

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_DRAIN_BYTES = 200 * 1024 * 1024  # an upload over the limit is read and dropped up to this size, then cut off
# Pillow refuses to open images over 179 megapixels, as a guard against decompression bombs; app.py
# checks read_page's lower limit (MAX_PAGE_PIXELS) on the size Pillow reads from the header.
Image.MAX_IMAGE_PIXELS = None
STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
STATIC_FILES = {  # URL path -> (file in static/, Content-Type); nothing else on disk is served
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}


class BadRequest(Exception):
    """An answer with a 4xx status and {"error": str(e)}."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def load_models(model_path):
    """One ImageToWordModel per decoder the page offers (each reads with the decoder it was made with):
    greedy, beam search, and greedy then the lexicon when the model folder has train.py's lexicon.txt.
    Greedy comes first, as the page's default: it is the fastest, and reads about as well (README: Inference)."""
    models = {"greedy": ImageToWordModel(model_path)}
    models["beam"] = ImageToWordModel(models["greedy"].model_path, decoder="beam")
    lexicon_path = os.path.join(os.path.dirname(models["greedy"].model_path), "lexicon.txt")
    if os.path.isfile(lexicon_path):
        models["lexicon"] = ImageToWordModel(models["greedy"].model_path, lexicon_path=lexicon_path)
    return models


def image_from_upload(data):
    """Uploaded bytes -> BGR image, or BadRequest saying what is wrong with them. read_page refuses
    images over MAX_PAGE_PIXELS, but only once decoded: here the pixel count is checked from the file's
    header first (Pillow reads only that), so that a small file that unpacks to billions of pixels is
    refused before it takes the memory."""
    try:
        with Image.open(io.BytesIO(data)) as header:
            width, height = header.size
    except Exception:  # not a format Pillow knows: OpenCV may still read it, and read_page checks its size
        width = height = 0
    if width * height > MAX_PAGE_PIXELS:
        raise BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the image is {width}x{height} pixels, "
                         f"more than {MAX_PAGE_PIXELS / 1e6:.0f} megapixels; scale it down")
    try:
        return decode_image(data)
    except UnreadableImage as e:
        raise BadRequest(HTTPStatus.BAD_REQUEST, f"cannot read the upload as an image: {e}") from None


class Handler(BaseHTTPRequestHandler):
    """The page's files on GET, readings on POST /api/read. serve() sets models (one per decoder) and model_name."""
    models = {}
    model_name = ""
    reading_slots = threading.BoundedSemaphore(CORES)  # images decoded and read at once: bounds the memory used
    timeout = 60  # seconds a client may stall mid-request before its connection is dropped

    def do_GET(self):
        path = urlsplit(self.path).path
        if path == "/api/info":
            return self.send_json(HTTPStatus.OK, {"model": self.model_name, "decoders": list(self.models),
                                                  "max_upload_bytes": MAX_UPLOAD_BYTES})
        if path not in STATIC_FILES:
            return self.send_json(HTTPStatus.NOT_FOUND, {"error": f"nothing at {path}; the page is at /"})
        name, content_type = STATIC_FILES[path]
        with open(os.path.join(STATIC_DIR, name), "rb") as f:
            body = f.read()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        try:
            self.send_json(HTTPStatus.OK, self.read_upload())
        except BadRequest as e:
            self.send_json(e.status, {"error": str(e)})
        except Exception as e:  # a bug: this request fails, with a one-line answer; the server goes on
            self.log_error("reading failed: %r", e)
            self.send_json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"the server failed to read this image ({e})"})

    def read_upload(self):
        url = urlsplit(self.path)
        if url.path != "/api/read":
            self.drop_body()
            raise BadRequest(HTTPStatus.NOT_FOUND, f"nothing to POST to at {url.path}; send images to /api/read")
        query = parse_qs(url.query)
        decoder = query.get("decoder", ["greedy"])[-1]
        name = os.path.basename(query.get("name", [""])[-1])[:200] or "image"  # what the XML calls the image
        if decoder not in self.models:
            self.drop_body()
            raise BadRequest(HTTPStatus.BAD_REQUEST, f"unknown decoder {decoder!r}; this model offers {', '.join(self.models)}")
        content_type = self.headers.get("Content-Type", "")
        if not content_type.startswith("image/"):
            self.drop_body()
            raise BadRequest(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                             f"the body must be an image file with Content-Type image/png, image/jpeg, ... (got {content_type or 'none'})")
        size = self.content_length()
        if size > MAX_UPLOAD_BYTES:
            self.drop_body()
            raise BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                             f"the upload is {size / 2**20:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 2**20:.0f} MB")
        try:
            data = self.rfile.read(size)
        except TimeoutError:
            self.close_connection = True
            raise BadRequest(HTTPStatus.REQUEST_TIMEOUT, f"the upload stalled for {self.timeout} s; send it again") from None
        if len(data) < size:
            raise BadRequest(HTTPStatus.BAD_REQUEST, f"the upload stopped after {len(data)} of {size} bytes")
        with self.reading_slots:
            image = image_from_upload(data)
            start = time.perf_counter()
            try:
                result = self.models[decoder].read_page(image)
            except UnreadableImage as e:
                raise BadRequest(HTTPStatus.BAD_REQUEST, f"cannot read this image: {e}") from None
        seconds = round(time.perf_counter() - start, 3)
        height, width = image.shape[:2]
        return {**result, "decoder": decoder, "seconds": seconds,
                "alto_xml": page_alto(result, name, width, height), "page_xml": page_pagexml(result, name, width, height)}

    def content_length(self):
        try:
            size = int(self.headers["Content-Length"])
        except (TypeError, ValueError):
            self.close_connection = True  # the body's end is unknown, so this connection cannot carry another request
            raise BadRequest(HTTPStatus.LENGTH_REQUIRED, "send the image with a Content-Length header") from None
        if size < 0:
            self.close_connection = True
            raise BadRequest(HTTPStatus.BAD_REQUEST, f"Content-Length {size} is negative")
        return size

    def drop_body(self):
        """Reads and drops a request body that will not be used. Closing the connection with unread
        bytes in it makes the client's system reset it, and the client may then never see our answer."""
        try:
            size = self.content_length()
        except BadRequest:
            return
        if size > MAX_DRAIN_BYTES:
            self.close_connection = True
            return
        while size > 0:
            chunk = self.rfile.read(min(size, 1 << 20))
            if not chunk:
                break
            size -= len(chunk)

    def method_not_allowed(self):
        self.drop_body()
        self.send_json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"{self.command} is not supported: GET the page, POST images to /api/read"},
                       {"Allow": "GET, POST"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = method_not_allowed

    def send_error(self, code, message=None, explain=None):
        """The server's own errors (a malformed request, a method it does not know) as JSON too."""
        self.close_connection = True
        if code == HTTPStatus.NOT_IMPLEMENTED:  # http.server's answer to an unknown method
            code, message = HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not supported: GET the page, POST images to /api/read"
        self.send_json(code, {"error": message or HTTPStatus(code).phrase})

    def send_json(self, status, payload, headers=None):
        body = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except ConnectionError:  # the client left (a closed tab): there is no one to answer
            self.close_connection = True


def serve(model_path, host, port):
    """Loads the model and serves the page until Ctrl+C."""
    Handler.models = load_models(model_path)
    Handler.model_name = Handler.models["greedy"].model_path
    server = ThreadingHTTPServer((host, port), Handler)
    url_host = f"[{host}]" if ":" in host else host
    print(f"Reading with {Handler.model_name} ({', '.join(Handler.models)}) on http://{url_host}:{server.server_port}/ "
          "(Ctrl+C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a .onnx file or a model folder (default: the newest model.onnx under Models/)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default %(default)s; 0 picks a free one)")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be between 0 and 65535, got {args.port}")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host}: anyone who can reach this machine can use the app "
              "(no password, no encryption)", file=sys.stderr)
    try:
        serve(args.model or newest_model_dir(), args.host, args.port)
    except ModelFileError as e:
        sys.exit(f"error: {e}")
    except OSError as e:  # the port is taken, or the host is not an address of this machine
        sys.exit(f"error: cannot listen on {args.host}:{args.port}: {e.strerror or e}; pass another --port or --host")


if __name__ == "__main__":
    main()
