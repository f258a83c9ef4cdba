"""Your own labelled images: a labels.csv with the columns image_path,label.

    my_words/labels.csv             image_path,label
                                    images/0001.jpg,Hello
                                    images/0002.png,"New York"
    my_words/images/0001.jpg        any format OpenCV reads

Image paths are relative to the CSV's folder (or absolute). Labels may hold spaces and any
Unicode; they are read as UTF-8. Bad rows are what words.txt lines are to iam_words.py: skipped,
counted and listed in a summary (the line number of a row, the path of an image), and training
goes on with the rest, unless fewer than MIN_ROWS rows are usable.
"""
import csv
import io
import os
import unicodedata
from collections import defaultdict

from htr.data.iam import DatasetError, drop_unreadable, split_dataset

COLUMNS = ("image_path", "label")
MIN_ROWS = 10  # fewer usable rows to train on are a mistake in the file, not a dataset
SHOWN = 10  # rows or images listed per reason in the summary


def csv_rows(csv_path: str):
    """The one reader of image_path,label files (yours, and the splits train.py writes): yields
    (line number, image_path as written, label as written, problem or None) for each row that is
    not blank. A problem is why the row cannot be used, in words. DatasetError for a file that
    cannot be read or has no such header."""
    try:
        with open(csv_path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise DatasetError(f"{csv_path} not found: a labelled folder holds labels.csv with the columns "
                           "image_path,label (or pass --train-csv FILE).") from None
    except OSError as e:
        raise DatasetError(f"cannot read {csv_path}: {e.strerror or e}") from None
    # utf-8-sig: spreadsheets often start the file with a byte-order mark. Bytes that are not UTF-8
    # become lone surrogates, so the CSV still parses and each bad row is reported on its own.
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig", errors="surrogateescape"), newline=""))
    header = [name.strip() for name in next(reader, [])]
    if not set(COLUMNS) <= set(header):
        raise DatasetError(f"{csv_path} needs a first line naming the columns image_path,label (it has "
                           f"{','.join(header) or 'nothing'!r}): write one row per image below it.")
    path_column, label_column = header.index("image_path"), header.index("label")
    while True:
        line_no = reader.line_num + 1  # where this row starts (a quoted label may span lines)
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield line_no, "", "", f"not a CSV row ({e})"
            continue
        if not any(field.strip() for field in fields):
            continue
        image_path = fields[path_column].strip() if path_column < len(fields) else ""
        label = fields[label_column] if label_column < len(fields) else ""
        if any("\udc80" <= c <= "\udcff" for field in fields for c in field):
            problem = "not valid UTF-8 (save the file as UTF-8)"
        elif not image_path:
            problem = "without an image_path"
        else:
            problem = None
        yield line_no, image_path, label, problem


def parse_labels_csv(csv_path: str, min_rows: int = MIN_ROWS) -> list[tuple[str, str, str]]:
    """Reads csv_path and returns [(image_path as written, image path to open, label), ...]; prints a summary.

    Labels are NFC-normalised (an "é" typed as e + accent and one typed as é are one character
    for the model) and stripped of spaces at either end, which no image shows."""
    folder = os.path.dirname(csv_path)
    rows, bad_rows, n_rows = [], defaultdict(list), 0
    for line_no, image_path, label, problem in csv_rows(csv_path):
        n_rows += not problem or not problem.startswith("not a CSV row")
        label = unicodedata.normalize("NFC", label.strip())
        if problem is None and not label:
            problem = "without a label"
        elif problem is None and any(unicodedata.category(c) == "Cc" for c in label):
            problem = "label holds a tab or line break"
        if problem:
            bad_rows[problem].append(f"line {line_no}")
        else:
            rows.append((image_path, os.path.join(folder, image_path), label))

    rows, bad_images = drop_unreadable(rows)

    print(f"{csv_path}: {n_rows} rows read, {len(rows)} kept")
    for reason, where in [*(("row " + r, w) for r, w in bad_rows.items()), *bad_images.items()]:
        more = f" and {len(where) - SHOWN} more" if len(where) > SHOWN else ""
        print(f"  skipped {reason}: {len(where)} ({', '.join(where[:SHOWN])}{more})")
    if len(rows) < min_rows:
        raise DatasetError(f"{csv_path}: {len(rows)} usable rows (see the summary above); "
                           f"at least {min_rows} are needed.")
    return rows


def read_labelled_csv(csv_path: str) -> list[tuple[str, str]]:
    """[(image path, label), ...] of a CSV to score a model on or to resume training from, every
    row as written: an image that cannot be read is reported when it is read. A relative path
    resolves against the CSV's folder, else the working directory (where train.py wrote it)."""
    rows = []
    for line_no, image_path, label, problem in csv_rows(csv_path):
        if problem:
            raise DatasetError(f"{csv_path}, line {line_no}: a row {problem}; fix or delete it")
        beside_csv = os.path.join(os.path.dirname(csv_path), image_path)
        rows.append((beside_csv if os.path.exists(beside_csv) else image_path, label))
    return rows


def split_labels_csv(train_csvs: list[str], val_csv: str | None = None, seed: int = 42) -> dict[str, list[list[str]]]:
    """{"train": [[image_path, label], ...], "val": [...], "test": []}: the files as given (the
    training rows of all of train_csvs), or without val_csv a random 90/10 split of them with `seed`
    (as iam.split_dataset)."""
    rows = [row for train_csv in train_csvs for row in parse_labels_csv(train_csv)]
    if not val_csv:
        return split_dataset(rows, "random", os.path.dirname(train_csvs[0]), seed=seed)
    val_rows = parse_labels_csv(val_csv, min_rows=1)
    shared = {path for _, path, _ in rows} & {path for _, path, _ in val_rows}
    if shared:
        print(f"  note: {len(shared)} images are in both {' and '.join(train_csvs)} and {val_csv}: validation "
              "overrates them")
    return {"train": [[path, label] for _, path, label in rows], "val": [[path, label] for _, path, label in val_rows],
            "test": []}
