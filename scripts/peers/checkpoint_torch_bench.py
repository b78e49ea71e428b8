"""Peer for bench/checkpoint.ts: the same files read/written by Debian python3-torch and
python3-msgpack. Flax itself is not packaged; its msgpack_serialize/restore are msgpack.packb /
unpackb with ext type 1 = packb((shape, dtype, bytes)) and np.frombuffer, done here the same way.
Each read runs in a fresh process for its peak RSS. Prints markdown table rows."""
import json
import os
import subprocess
import sys
import time


def read_one(kind, path):
    import numpy as np

    t0 = time.perf_counter()
    if kind == "msgpack":
        import msgpack

        def ext(code, data):
            shape, dtype, buf = msgpack.unpackb(data, raw=True)
            return np.frombuffer(buf, dtype=np.dtype(dtype.decode())).reshape(shape)

        with open(path, "rb") as f:
            msgpack.unpackb(f.read(), ext_hook=ext, raw=False)
    else:
        import torch

        torch.load(path, map_location="cpu", weights_only=True)
    secs = time.perf_counter() - t0
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss across execve from the parent
    with open("/proc/self/status") as f:
        peak = int(next(line for line in f if line.startswith("VmHWM")).split()[1]) / 1024
    print(json.dumps({"secs": secs, "peakMiB": peak}))


def main(d):
    import msgpack
    import numpy as np
    import torch

    def ext(code, data):
        shape, dtype, buf = msgpack.unpackb(data, raw=True)
        return np.frombuffer(buf, dtype=np.dtype(dtype.decode())).reshape(shape)

    with open(f"{d}/p.msgpack", "rb") as f:
        tree = msgpack.unpackb(f.read(), ext_hook=ext, raw=False)

    def pack(x):
        return msgpack.ExtType(1, msgpack.packb((x.shape, x.dtype.name, x.tobytes()), use_bin_type=True))

    mib = lambda p: os.path.getsize(p) / 2**20
    rows = []

    def row(what, secs, path, peak=None):
        mem = "" if peak is None else f" {peak:.0f} MiB peak RSS (file {mib(path):.0f} MiB)"
        rows.append(f"| {what} | {secs:.2f} s | {mib(path) / secs:.0f} MiB/s |{mem} |")

    t0 = time.perf_counter()
    with open(f"{d}/py.msgpack", "wb") as f:
        f.write(msgpack.packb(tree, default=pack, strict_types=True))
    row("python: write msgpack (flax's packb)", time.perf_counter() - t0, f"{d}/py.msgpack")
    r = read_one_sub("msgpack", f"{d}/p.msgpack")
    row("python: read msgpack (flax's unpackb)", r["secs"], f"{d}/p.msgpack", r["peakMiB"])
    sd = torch.load(f"{d}/p.pth", weights_only=True)
    t0 = time.perf_counter()
    torch.save(sd, f"{d}/py.pth")
    row("python: torch.save", time.perf_counter() - t0, f"{d}/py.pth")
    r = read_one_sub("pth", f"{d}/p.pth")
    row("python: torch.load(weights_only=True)", r["secs"], f"{d}/p.pth", r["peakMiB"])
    print("\n".join(rows))


def read_one_sub(kind, path):
    out = subprocess.run([sys.executable, __file__, "--read", kind, path], capture_output=True, check=True)
    return json.loads(out.stdout)


if __name__ == "__main__":
    if sys.argv[1] == "--read":
        read_one(sys.argv[2], sys.argv[3])
    else:
        main(sys.argv[1])
