"""Reads an images parquet written by `ldawt download --format parquet` with pyarrow and prints
one JSON list: per row its columns, the image struct's path, and the sha256 of its bytes."""
import hashlib
import json
import sys

import pyarrow.parquet as pq

table = pq.read_table(sys.argv[1])
image_type = table.schema.field("image").type
assert [image_type.field(i).name for i in range(image_type.num_fields)] == ["bytes", "path"]
rows = []
for row in table.to_pylist():
    image = row.pop("image")
    row["image_path"] = image["path"]
    row["image_sha256"] = hashlib.sha256(image["bytes"]).hexdigest()
    rows.append(row)
print(json.dumps(rows))
