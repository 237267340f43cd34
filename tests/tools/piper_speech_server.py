"""An OpenAI-compatible text-to-speech node for the tests: POST /v1/audio/speech with Piper.

A test tool, not part of the product: it lets tests (and a developer trying the candidate page) hear
the interviewer through a real local voice. `{model, input, voice, response_format}` in; a WAV
(`wav`, default) or raw PCM16 (`pcm`) of the voice's native rate out. GET /health and GET /v1/models
answer too. Binds 127.0.0.1 on the port given (0: the OS picks) and prints
`listening on http://127.0.0.1:PORT`.
Usage: python piper_speech_server.py VOICE.onnx [PORT]
"""

import io
import json
import sys
import threading
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from piper import PiperVoice

VOICE = PiperVoice.load(sys.argv[1])
LOCK = threading.Lock()
MAX_INPUT = 4096


def synthesize(text: str) -> bytes:
    with LOCK:
        return b"".join(chunk.audio_int16_bytes for chunk in VOICE.synthesize(text))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def error(self, status: int, message: str) -> None:
        body = json.dumps({"error": {"message": message, "type": "invalid_request_error"}})
        self.reply(status, body.encode())

    def do_GET(self):
        if self.path == "/health":
            self.reply(200, b'{"status":"ok"}')
        elif self.path == "/v1/models":
            self.reply(200, b'{"object":"list","data":[{"id":"piper","object":"model"}]}')
        else:
            self.error(404, "not found")

    def do_POST(self):
        if self.path.rstrip("/") != "/v1/audio/speech":
            self.error(404, "not found")
            return
        n = int(self.headers.get("Content-Length", "0"))
        try:
            req = json.loads(self.rfile.read(n) or b"{}")
        except ValueError:
            self.error(400, "body is not JSON")
            return
        text = str(req.get("input", "")).strip()
        if not text or len(text) > MAX_INPUT:
            self.error(400, f"input: 1-{MAX_INPUT} characters")
            return
        fmt = req.get("response_format", "wav")
        if fmt not in ("wav", "pcm"):
            self.error(400, f"response_format {fmt!r}: wav or pcm")
            return
        pcm = synthesize(text)
        rate = VOICE.config.sample_rate
        if fmt == "pcm":
            self.reply(200, pcm, "audio/pcm")
            return
        buf = io.BytesIO()
        with wave.open(buf, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(pcm)
        self.reply(200, buf.getvalue(), "audio/wav")


def main() -> None:
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
