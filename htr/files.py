"""Every file the project writes is written under a temporary name first, then renamed: a kill, a
crash or a full disk mid-write leaves the previous file (or none), never half of one."""
import contextlib
import csv
import json
import os


@contextlib.contextmanager
def replacing(path, suffix=""):
    """Yields a temporary name beside `path` to write to; when the block ends without an error, that
    file replaces `path` (os.replace is atomic), and on an error it is removed. `suffix`: an ending
    the writer insists on (Keras saves only to names ending in .keras)."""
    tmp_path = f"{path}.tmp{suffix}"
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)


def write_file(path, data):
    """bytes, or str written as UTF-8."""
    with replacing(path) as tmp_path, open(tmp_path, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)


def write_json(data, path):
    write_file(path, json.dumps(data, indent=2, default=float))  # default: NumPy numbers


def write_csv(path, header, rows):
    """A CSV with a header line: what the project writes (image_path,label splits, scored
    predictions) and reads back (htr.data.labels_csv). Empty cells for None."""
    with replacing(path) as tmp_path, open(tmp_path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([["" if value is None else value for value in row] for row in rows])
