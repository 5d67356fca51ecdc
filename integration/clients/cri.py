#!/usr/bin/python3
"""A minimal CRI client (kubelet's side of runtime.v1) for the tests.

Speaks gRPC through Debian's python3-grpcio; the few protobuf messages it
needs are encoded and decoded here by hand, with the field numbers of
Kubernetes' cri-api `api.proto`, so no generated code or protoc is needed.

  cri.py SOCKET version
  cri.py SOCKET run NAME UID NAMESPACE [ATTEMPT]     -> prints the sandbox ID
  cri.py SOCKET status ID                            -> prints JSON {state, ip, additional_ips}
  cri.py SOCKET stop ID
  cri.py SOCKET remove ID
  cri.py SOCKET pod-cidr CIDR                        (UpdateRuntimeConfig)
  cri.py SOCKET list                                 -> prints the sandbox IDs, one per line

Each call times itself and prints `<seconds>` on stderr; errors exit 1
with the gRPC status on stderr.
"""

import json
import sys
import time

import grpc

SERVICE = "/runtime.v1.RuntimeService/"


# --- protobuf wire format -------------------------------------------------

def varint(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number, value):
    """A field: bytes/str/nested message as length-delimited, int as varint."""
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint((number << 3) | 2) + varint(len(value)) + value


def message(*fields):
    return b"".join(field(n, v) for n, v in fields if v is not None)


def read_varint(data, i):
    shift = result = 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, i
        shift += 7


def fields_of(data):
    """(number, value) pairs: ints for varints, bytes for length-delimited."""
    i, out = 0, []
    while i < len(data):
        key, i = read_varint(data, i)
        number, kind = key >> 3, key & 7
        if kind == 0:
            value, i = read_varint(data, i)
        elif kind == 2:
            length, i = read_varint(data, i)
            value, i = data[i:i + length], i + length
        elif kind == 1:
            value, i = data[i:i + 8], i + 8
        elif kind == 5:
            value, i = data[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {kind}")
        out.append((number, value))
    return out


def first(data, number, default=None):
    return next((v for n, v in fields_of(data) if n == number), default)


# --- the calls ------------------------------------------------------------

STATES = {0: "SANDBOX_READY", 1: "SANDBOX_NOTREADY"}


def call(channel, method, request):
    identity = lambda b: b  # noqa: E731 - raw bytes both ways
    stub = channel.unary_unary(SERVICE + method, request_serializer=identity,
                               response_deserializer=identity)
    return stub(request, timeout=120)


def run(args):
    name, uid, namespace = args[:3]
    attempt = int(args[3]) if len(args) > 3 else 0
    metadata = message((1, name), (2, uid), (3, namespace), (4, attempt))
    config = message((1, metadata), (2, name), (3, "/tmp"))
    return message((1, config)), lambda r: first(r, 1, b"").decode()


def status(args):
    def parse(reply):
        status = first(reply, 1, b"")
        network = first(status, 5, b"")
        extra = [first(ip, 1, b"").decode() for n, ip in fields_of(network) if n == 2]
        return json.dumps({
            "id": first(status, 1, b"").decode(),
            "state": STATES.get(first(status, 3, 0), "unknown"),
            "ip": first(network, 1, b"").decode(),
            "additional_ips": extra,
        })
    return message((1, args[0])), parse


def pod_cidr(args):
    network_config = message((1, args[0]))
    runtime_config = message((1, network_config))
    return message((1, runtime_config)), lambda r: ""


def list_sandboxes(args):
    def parse(reply):
        return "\n".join(first(item, 1, b"").decode() for n, item in fields_of(reply) if n == 1)
    return b"", parse


COMMANDS = {
    "list": ("ListPodSandbox", list_sandboxes),
    "version": ("Version", lambda a: (message((1, "0.1.0")),
                                      lambda r: first(r, 2, b"").decode() + " " + first(r, 4, b"").decode())),
    "run": ("RunPodSandbox", run),
    "status": ("PodSandboxStatus", status),
    "stop": ("StopPodSandbox", lambda a: (message((1, a[0])), lambda r: "")),
    "remove": ("RemovePodSandbox", lambda a: (message((1, a[0])), lambda r: "")),
    "pod-cidr": ("UpdateRuntimeConfig", pod_cidr),
}


def main():
    if len(sys.argv) < 3 or sys.argv[2] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    socket, command, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    method, build = COMMANDS[command]
    request, parse = build(args)
    with grpc.insecure_channel("unix://" + socket) as channel:
        start = time.monotonic()
        try:
            reply = call(channel, method, request)
        except grpc.RpcError as err:
            print(f"{method}: {err.code().name}: {err.details()}", file=sys.stderr)
            return 1
        print(f"{time.monotonic() - start:.6f}", file=sys.stderr)
    text = parse(reply)
    if text:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
