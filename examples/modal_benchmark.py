"""Ping-pong latency between two Modal containers (or this machine and one
container) over quic_portal: ITERATIONS round trips of a 600 KiB ping
answered by a 5 KiB pong, reporting avg, p50, p75, p90, min and max in ms.

    modal run examples/modal_benchmark.py
    modal run examples/modal_benchmark.py --local --iterations 200 --cc bbr

The same pattern on one machine, against the C benchmark: python/bench_pingpong.py.
"""

import modal

try:
    from _modal_image import image
except ImportError:  # pragma: no cover
    from examples._modal_image import image

app = modal.App("quic-portal-benchmark", image=image)

PING_SIZE = 600 * 1024
PONG_SIZE = 5 * 1024
DONE = b"done"


def summarize(latencies_ms):
    """avg, p50, p75, p90, min, max of a list of milliseconds."""
    s = sorted(latencies_ms)

    def pct(q):
        return s[min(int(len(s) * q), len(s) - 1)]

    return {
        "iterations": len(s),
        "avg_ms": sum(s) / len(s),
        "p50_ms": pct(0.5),
        "p75_ms": pct(0.75),
        "p90_ms": pct(0.9),
        "min_ms": s[0],
        "max_ms": s[-1],
    }


def options(cc):
    from quic_portal import QuicTransportOptions

    return QuicTransportOptions(congestion_controller_type=cc)


@app.function(timeout=1800)
def server_function(coord_dict: modal.Dict, cc: str = "cubic"):
    from quic_portal import ConnectionError, Portal

    portal = Portal.create_server(dict=coord_dict, local_port=5555,
                                  transport_options=options(cc))
    pong = bytes(PONG_SIZE)
    while True:
        try:
            ping = portal.recv(timeout_ms=60000)
        except ConnectionError:  # the client closed
            break
        if ping is None or ping == DONE:
            break
        portal.send(pong)
    portal.close()


@app.function(timeout=1800)
def client_function(coord_dict: modal.Dict, iterations: int = 50, cc: str = "cubic"):
    import time

    from quic_portal import Portal

    portal = Portal.create_client(dict=coord_dict, local_port=5556,
                                  transport_options=options(cc))
    ping = bytes(PING_SIZE)
    for _ in range(3):  # warm up the congestion window
        portal.send(ping)
        portal.recv(timeout_ms=10000)
    latencies = []
    for i in range(iterations):
        t0 = time.perf_counter()
        portal.send(ping)
        pong = portal.recv(timeout_ms=10000)
        latencies.append((time.perf_counter() - t0) * 1000)
        if pong is None or len(pong) != PONG_SIZE:
            raise RuntimeError(f"round trip {i + 1}: no {PONG_SIZE}-byte pong within 10 s")
    portal.send(DONE)
    portal.close()
    stats = summarize(latencies)
    print(f"{iterations} round trips of {PING_SIZE} B ping / {PONG_SIZE} B pong ({cc}):")
    for key in ("avg_ms", "p50_ms", "p75_ms", "p90_ms", "min_ms", "max_ms"):
        print(f"  {key[:-3]:>4}: {stats[key]:8.3f} ms")
    return stats


@app.local_entrypoint()
def main(local: bool = False, iterations: int = 50, cc: str = "cubic"):
    with modal.Dict.ephemeral() as coord_dict:
        server_task = server_function.spawn(coord_dict, cc)
        if local:
            stats = client_function.local(coord_dict, iterations, cc)
        else:
            stats = client_function.remote(coord_dict, iterations, cc)
        server_task.cancel()
    print(stats)
