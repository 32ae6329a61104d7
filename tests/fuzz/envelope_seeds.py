#!/usr/bin/env python3
"""Writes the envelope and consumer fuzz targets' seeds (binary panel.v1.Envelope messages)
into corpus/envelope/ and corpus/consumer/. The messages are written out by hand below, field number by field number
(proto/panel/v1/events.proto), with a minimal protobuf wire encoder, so the seeds need no
build. Run it again after changing the list."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def vfield(num, value):
    return varint(num << 3) + varint(value)


def lfield(num, data):
    if isinstance(data, str):
        data = data.encode()
    return varint(num << 3 | 2) + varint(len(data)) + data


def envelope(payload_num, payload, source=1, tenant="t-fuzz", run="0d6f3a52-8f0e-4c55-9a1e-2c1b5f7d9e01"):
    return (lfield(1, "8a4e6a0c-1f2b-4d3c-9e8f-0a1b2c3d4e5f") + lfield(2, tenant) + vfield(3, source)
            + lfield(4, run) + vfield(5, 1764100000000) + vfield(6, 1) + lfield(payload_num, payload))


PERSON = (lfield(1, "1001") + lfield(2, " Ann.Lee@Demo.k12.example ") + lfield(3, "ann.lee@demo.k12.example")
          + lfield(4, "Ann") + lfield(5, "Lee") + lfield(6, "Ann Lee") + lfield(7, "/Students")
          + vfield(8, 0) + vfield(10, 0) + lfield(11, "S-1001"))
SEEDS = {
    "run_started": envelope(12, vfield(1, 1) + lfield(3, "manual")),
    "run_completed": envelope(13, vfield(1, 1) + lfield(2, vfield(1, 2) + vfield(2, 1) + vfield(6, 3))),
    "run_failed": envelope(14, vfield(1, 5) + lfield(2, "users page: malformed")),
    "person_google": envelope(15, lfield(1, PERSON)),
    "person_azure_delta": envelope(15, lfield(1, lfield(1, "8f1c-0001") + lfield(6, "Bob Smith")), source=2),
    "orgunit": envelope(16, lfield(1, lfield(1, "id:03ph8a2z1") + lfield(2, "/Students") + lfield(3, "Students"))),
    "device": envelope(17, lfield(1, lfield(1, "dev-1") + lfield(2, "5CD1234XYZ") + lfield(4, "ACTIVE"))),
    "removed": envelope(18, vfield(1, 1) + lfield(2, "8f1c-0003") + vfield(3, 2), source=2),
    "bad_tenant": envelope(15, lfield(1, PERSON), tenant="../x' OR 1=1"),
    "bad_run": envelope(12, vfield(1, 1), run="not-a-uuid"),
    "device_from_azure": envelope(17, lfield(1, lfield(1, "dev-1")), source=2),
    "public_payload": envelope(19, b""),
    "no_payload": lfield(1, "x") + lfield(2, "t") + vfield(6, 1),
    "future_schema": lfield(1, "x") + lfield(2, "t") + vfield(6, 99) + lfield(12, b""),
}

# The consumer target (fuzz_consumer.c) reads a 13-byte prefix first: a byte of flags, the
# message's partition (4 bytes) and offset (8 bytes), little-endian; then the message's value.
CONSUMER_PREFIX = bytes([0]) + (3).to_bytes(4, "little") + (123456789).to_bytes(8, "little")

if __name__ == "__main__":
    for target, prefix in (("envelope", b""), ("consumer", CONSUMER_PREFIX)):
        d = os.path.join(HERE, "corpus", target)
        os.makedirs(d, exist_ok=True)
        for name, data in SEEDS.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(prefix + data)
