"""The other side of the two-process tests (run by conftest.run_peer).

Each mode prints one line per step on stdout so the test can follow it:

  echo-server PORT        listen; "connected"; echo every message until the
                          client closes; "done N"
  recv-blocker PORT       listen; "connected"; "blocking"; recv() until
                          Ctrl-C: "interrupted T" (T = time.monotonic() when
                          KeyboardInterrupt arrived), then recv() again:
                          "got LEN SHA256"
  recv-timeout PORT MS    listen; "connected"; "blocking"; recv(MS): with
                          Ctrl-C as above, else "timeout T"
  listen-blocker PORT     "blocking"; listen() until Ctrl-C: "interrupted T"
  connect-blocker PORT    "blocking"; connect() to a port nobody serves,
                          until Ctrl-C: "interrupted T"
"""

import hashlib
import sys
import time

from quic_portal import ConnectionError, Portal


def say(*words):
    print(*words, flush=True)


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    portal = Portal()
    if mode == "listen-blocker":
        say("blocking")
        try:
            portal.listen(port)
        except KeyboardInterrupt:
            say("interrupted", repr(time.monotonic()))
        say("connected" if portal.is_connected() else "not-connected")
        return
    if mode == "connect-blocker":
        say("blocking")
        try:
            portal.connect("127.0.0.1", port, 0)
        except KeyboardInterrupt:
            say("interrupted", repr(time.monotonic()))
        say("connected" if portal.is_connected() else "not-connected")
        return

    portal.listen(port)
    say("connected")
    if mode == "echo-server":
        n = 0
        while True:
            try:
                msg = portal.recv()
            except ConnectionError:
                break
            portal.send(msg)
            n += 1
        say("done", n)
    elif mode in ("recv-blocker", "recv-timeout"):
        timeout = int(sys.argv[3]) if mode == "recv-timeout" else None
        say("blocking")
        try:
            msg = portal.recv(timeout)
            if msg is None:
                say("timeout", repr(time.monotonic()))
                return
            say("unexpected", len(msg))
            return
        except KeyboardInterrupt:
            say("interrupted", repr(time.monotonic()))
        msg = portal.recv(10000)
        if msg is None:
            say("got none")
        else:
            say("got", len(msg), hashlib.sha256(msg).hexdigest())
        try:
            portal.recv(10000)  # until the client closes
        except ConnectionError:
            pass
    portal.close()


if __name__ == "__main__":
    try:
        main()
    except ConnectionError as e:
        say("error", e)
        sys.exit(3)
