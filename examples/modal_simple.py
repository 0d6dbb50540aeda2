"""Echo between two Modal containers (or this machine and one container)
that find each other through a modal.Dict and punch through their NATs.

    modal run examples/modal_simple.py            # container <-> container
    modal run examples/modal_simple.py --local    # this machine <-> container

Needs a Modal account, and quic_portal installed locally for --local.
"""

import modal

try:  # `modal run` imports this file as a script, or as examples.modal_simple
    from _modal_image import image
except ImportError:  # pragma: no cover
    from examples._modal_image import image

app = modal.App("quic-portal-simple", image=image)


@app.function(timeout=600)
def server_function(coord_dict: modal.Dict):
    from quic_portal import ConnectionError, Portal

    # Publishes this side's addresses and certificate fingerprint in the
    # dict, waits for the client's, punches through both NATs.
    portal = Portal.create_server(dict=coord_dict, local_port=5555)
    print("server: connected")
    while True:
        try:
            data = portal.recv(timeout_ms=10000)
        except ConnectionError:  # the client closed
            break
        if data is None:  # the client went quiet: done
            break
        message = data.decode("utf-8")
        print(f"server: received {message!r}")
        portal.send(f"Echo: {message}")
    portal.close()


@app.function(timeout=600)
def client_function(coord_dict: modal.Dict):
    from quic_portal import Portal

    portal = Portal.create_client(dict=coord_dict, local_port=5556)
    print("client: connected")
    for i in range(3):
        portal.send(f"Hello, QUIC! ({i})".encode("utf-8"))
        response = portal.recv(timeout_ms=5000)
        if response is None:
            print("client: no response within 5 s")
            break
        print(f"client: got {response.decode('utf-8')!r}")
    portal.close()


@app.local_entrypoint()
def main(local: bool = False):
    with modal.Dict.ephemeral() as coord_dict:
        server_task = server_function.spawn(coord_dict)
        if local:
            client_function.local(coord_dict)
        else:
            client_function.remote(coord_dict)
        server_task.cancel()
