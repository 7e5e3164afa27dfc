"""Reads a webdataset tar written by `ldawt download --format webdataset` with the `webdataset`
package from PyPI, as a training loader would, and prints one JSON list describing every sample:
its key, member extensions, parsed .json, .cls as an int, .txt as text, and the image's
sha256."""
import hashlib
import json
import sys

import webdataset as wds

samples = []
for s in wds.WebDataset(sys.argv[1], shardshuffle=False):
    exts = sorted(k for k in s if not k.startswith("__"))
    images = [e for e in exts if e not in ("json", "cls", "txt")]
    assert len(images) == 1, f"{s['__key__']}: image members {images}"
    samples.append(
        {
            "key": s["__key__"],
            "exts": exts,
            "meta": json.loads(s["json"]),
            "cls": int(s["cls"]) if "cls" in s else None,
            "txt": s["txt"].decode("utf-8") if "txt" in s else None,
            "sha256": hashlib.sha256(s[images[0]]).hexdigest(),
        }
    )
print(json.dumps(samples))
