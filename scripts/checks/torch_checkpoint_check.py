"""Torch-side checks for the checkpoint tests (run with Debian's /usr/bin/python3 + python3-torch).

  compare A.pth B.pth      load both with weights_only=True; same keys, dtypes and values?
  load A.pth               load with weights_only=True; print {key: [shape, dtype]} as JSON
  make-fixture OUT.pth     save tensors of several dtypes/layouts; print their values as JSON
  zipcheck A.zip           Python's zipfile: CRC-check every entry, print the names
  compare-safetensors A.safetensors B.pth   parse A by hand (json + numpy); equal to B's tensors?
  flax-pack SPEC.json OUT  pack a tree the way flax.serialization.msgpack_serialize does (sorted
                           keys, ext type 1 = packb((shape, dtype_name, bytes))), from a JSON spec
                           {path: {shape, dtype, hex}} or {path: {value}}
  resize-fixture REF.pth OUT.pth   vit-a's position grid [8,8,64] resized by torch's antialiased
                           bicubic (Keys a=-0.5, PIL-style support scaling: the same filter as
                           jax.image.resize(..., "bicubic")) to several grids
"""
import json
import sys
import zipfile


def load(path):
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def compare(a_path, b_path):
    import torch

    a, b = load(a_path), load(b_path)
    if list(a.keys()) != list(b.keys()) and set(a.keys()) != set(b.keys()):
        sys.exit(f"keys differ: {sorted(set(a) ^ set(b))}")
    for k in b:
        if a[k].dtype != b[k].dtype or a[k].shape != b[k].shape or not torch.equal(a[k], b[k]):
            sys.exit(f"{k}: {a[k].dtype} {tuple(a[k].shape)} vs {b[k].dtype} {tuple(b[k].shape)}")
    print(f"equal {len(b)}")


def describe(path):
    sd = load(path)
    print(json.dumps({k: [list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in sd.items()}))


def make_fixture(out):
    import torch

    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=g)
    sd = {
        "f32": torch.randn(2, 3, generator=g),
        "bf16": torch.randn(5, generator=g).to(torch.bfloat16),
        "f16": torch.tensor([1.0, -2.0, 0.5, 65504.0, 2**-24]).half(),
        "f64": torch.tensor([0.1, -3.25], dtype=torch.float64),
        "i64": torch.tensor([[-5, 7], [2**31 - 1, -(2**31)]], dtype=torch.int64),
        "i32": torch.tensor([1, -1], dtype=torch.int32),
        "u8": torch.tensor([0, 255, 7], dtype=torch.uint8),
        "bool": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "transposed": base.t(),  # non-contiguous view
        "row": base[1],  # view with offset into the same storage
        "param": torch.nn.Parameter(torch.arange(6.0).reshape(2, 3)),
    }
    torch.save(sd, out)
    values = {}
    for k, v in sd.items():
        v = v.detach()
        flat = v.float() if v.dtype in (torch.bfloat16, torch.float16, torch.float64) else v
        values[k] = {
            "shape": list(v.shape),
            "dtype": str(v.dtype).replace("torch.", ""),
            "values": flat.reshape(-1).tolist(),
        }
        if v.dtype == torch.bfloat16:
            values[k]["bits"] = v.view(torch.int16).reshape(-1).tolist()
    print(json.dumps(values))


def compare_safetensors(st_path, pth_path):
    import torch
    import numpy as np

    with open(st_path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    header.pop("__metadata__", None)
    data = raw[8 + n :]
    ref = load(pth_path)
    if set(header) != set(ref):
        sys.exit(f"keys differ: {sorted(set(header) ^ set(ref))}")
    for k, info in header.items():
        if info["dtype"] != "F32":
            sys.exit(f"{k}: dtype {info['dtype']}")
        begin, end = info["data_offsets"]
        a = np.frombuffer(data[begin:end], dtype="<f4").reshape(info["shape"])
        if not torch.equal(torch.from_numpy(a.copy()), ref[k]):
            sys.exit(f"{k}: values differ")
    print(f"equal {len(ref)}")


def resize_fixture(ref_path, out_path):
    import torch
    import torch.nn.functional as F

    pos = load(ref_path)["pos_embed"][0, 1:, :]  # drop the cls row: [64, 64]
    grid = pos.reshape(8, 8, 64).double()
    out = {"src": grid.float().contiguous()}
    for name, size in {"up12": (12, 12), "down5": (5, 5), "rect6x10": (6, 10), "same8": (8, 8)}.items():
        x = grid.permute(2, 0, 1)[None]  # [1, C, H, W]
        y = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)
        out[name] = y[0].permute(1, 2, 0).float().contiguous()
    torch.save(out, out_path)
    print("ok")


def flax_pack(spec_path, out_path):
    import msgpack

    with open(spec_path) as f:
        spec = json.load(f)
    tree = {}
    for path, leaf in spec.items():
        node = tree
        *parents, last = path.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        if "value" in leaf:
            node[last] = leaf["value"]
        else:
            payload = msgpack.packb(
                (tuple(leaf["shape"]), leaf["dtype"], bytes.fromhex(leaf["hex"])), use_bin_type=True
            )
            node[last] = msgpack.ExtType(1, payload)

    def sort(node):  # jax.tree_util flattening sorts dict keys; flax serialises that order
        return {k: sort(node[k]) for k in sorted(node)} if isinstance(node, dict) else node

    with open(out_path, "wb") as f:
        f.write(msgpack.packb(sort(tree), strict_types=True))
    print("ok")


def zipcheck(path):
    with zipfile.ZipFile(path) as z:
        bad = z.testzip()
        if bad is not None:
            sys.exit(f"bad entry {bad}")
        print(json.dumps([i.filename for i in z.infolist()]))


if __name__ == "__main__":
    cmd, *rest = sys.argv[1:]
    commands = {
        "compare": compare,
        "load": describe,
        "make-fixture": make_fixture,
        "zipcheck": zipcheck,
        "compare-safetensors": compare_safetensors,
        "resize-fixture": resize_fixture,
        "flax-pack": flax_pack,
    }
    commands[cmd](*rest)
