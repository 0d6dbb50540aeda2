"""Echo between two processes on this machine with listen/connect (no NAT
traversal, no Modal): the quickest check that quic_portal works.

    python3 examples/local_echo.py              # runs both sides
    python3 examples/local_echo.py server 7000  # or one side per terminal
    python3 examples/local_echo.py client 7000

With the in-place build: PYTHONPATH=python python3 examples/local_echo.py
"""

import os
import subprocess
import sys
import time

from quic_portal import ConnectionError, Portal


def server(port):
    portal = Portal()
    print(f"server: waiting on UDP port {port}", flush=True)
    portal.listen(port)
    print("server: client connected", flush=True)
    while True:
        try:
            data = portal.recv()  # Ctrl-C works here
        except ConnectionError:
            break  # the client closed
        portal.send(b"Echo: " + data)
    print("server: client closed", flush=True)
    portal.close()


def client(port):
    portal = Portal()
    portal.connect("127.0.0.1", port, 0)
    for text in ("Hello, QUIC!", "héllo again", "x" * 100000):
        portal.send(text)
        reply = portal.recv(timeout_ms=5000)
        print(f"client: {len(reply)} bytes back: {reply[:40]!r}", flush=True)
    portal.close()


def main():
    if len(sys.argv) == 3:
        (server if sys.argv[1] == "server" else client)(int(sys.argv[2]))
        return
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "server", str(port)])
    try:
        time.sleep(0.3)
        client(port)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()


if __name__ == "__main__":
    main()
