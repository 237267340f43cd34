"""A local speech-to-text node for the tests: faster-whisper-server (PyPI) on a port the OS picks.

Runs the server's own FastAPI app with uvicorn on an already-bound socket (port 0), so tests never
race for a port, and prints `listening on http://127.0.0.1:PORT` once it accepts connections.
Usage: python whisper_node.py CONFIG.yaml   (the YAML written by .ci/install-voice)
"""

import os
import socket
import sys
import threading
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import uvicorn  # noqa: E402
from faster_whisper_server.api import app  # noqa: E402
from faster_whisper_server.models import configure_models_from_config  # noqa: E402


def main() -> None:
    config = sys.argv[1]
    os.environ["FWS_CONFIG_PATH"] = config
    configure_models_from_config(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    # The line goes out once uvicorn serves (the app's lifespan, which loads the model, has run).
    while not server.started:
        if not thread.is_alive():
            sys.exit("faster-whisper-server did not start")
        time.sleep(0.05)
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    thread.join()


if __name__ == "__main__":
    main()
