"""IAM words (and lines): download, verify, extract, parse and split.

The tutorial trains on the IAM handwriting database's word images. This file gets them
onto disk and turns words.txt into (image_path, label) lists, guarding against the ways
that goes wrong in practice: interrupted downloads, corrupt or tampered archives, half
extracted folders, bad lines in words.txt and unreadable images.

Layout on disk (the one IAM ships, which --data-dir folders must follow too):

    Datasets/IAM_Words.zip                          downloaded archive (kept; delete it to save space)
    Datasets/IAM_Words/words.txt                    one line per word image
    Datasets/IAM_Words/words/a01/a01-000u/a01-000u-00-00.png
    Datasets/IAM_Words/.extracted                   written last: the folder is complete

A --data-dir folder may hold IAM's lines instead (lines.txt, lines/a01/a01-000u/a01-000u-00.png):
parse_lines_txt() reads it with the same checks, and split_dataset() splits its line ids as word ids.

Four calls: download_iam_words() -> parse_words_txt() -> split_dataset() -> train.
"""

import http.client
import os
import posixpath
import random
import re
import shutil
import socket
import ssl
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import cv2
from tqdm import tqdm

from htr import ASSETS_DIR

IAM_WORDS_URL = "https://git.io/J0fjL"  # the original tutorial's IAM_Words.zip (holds words.txt and words.tgz)
IAM_DIR = os.path.join("Datasets", "IAM_Words")
AACHEN_SPLITS_DIR = os.path.join(ASSETS_DIR, "iam_aachen_splits")
MARKER = ".extracted"  # written last, so a folder without it is an interrupted extraction

TIMEOUT_S = 10  # per socket operation; with CONNECT_TRIES an offline machine gives up well within a minute
DOWNLOAD_TRIES = 4  # transfer errors (reset, timeout, 5xx, cut-off body) are retried after 1, 2, 4 s
CONNECT_TRIES = 2  # if we cannot even connect, we are most likely offline: do not make the user wait
RETRY_BACKOFF_S = 1.0  # first wait between tries, doubled each time (tests set it small)
CHUNK_BYTES = 1 << 20

WAYS_OUT = ("Download IAM_Words.zip yourself and pass --archive PATH (IAM_Words.zip or words.tgz), "
            "or pass --data-dir DIR (an extracted folder holding words.txt and words/).")


class DatasetError(Exception):
    """Expected, user-fixable problem: train.py prints str(e) on one line and exits 1, no traceback."""


# -----------------------------------------------------------------------------
# download


def download_iam_words(dataset_dir: str = IAM_DIR, url: str = IAM_WORDS_URL, archive: str | None = None) -> str:
    """Returns a folder holding words.txt and words/ (extracted, verified).

    archive= a local IAM_Words.zip or words.tgz the user downloaded; for a bare words.tgz,
    IAM's words.txt must lie next to it. Without archive= the zip is downloaded to
    <dataset_dir>.zip (once; a finished download is reused). A folder that already has
    its marker is returned at once, without touching the network.
    """
    dataset_dir = os.path.normpath(dataset_dir)
    if os.path.isfile(os.path.join(dataset_dir, MARKER)):
        return dataset_dir
    if os.path.exists(dataset_dir):
        print(f"{dataset_dir} has no {MARKER} marker (interrupted extraction?): extracting it again")
    if archive is None:
        archive = dataset_dir + ".zip"
        if not os.path.isfile(archive):
            os.makedirs(os.path.dirname(archive) or ".", exist_ok=True)
            download(url, archive)
    elif not os.path.isfile(archive):
        raise DatasetError(f"--archive {archive} not found: pass the path of an IAM_Words.zip or words.tgz.")
    extract_archive(archive, dataset_dir)
    return dataset_dir


def download(url: str, path: str) -> None:
    """Downloads url to path via path.part, resuming and retrying; path appears only when complete."""
    part_path = path + ".part"
    print(f"downloading {url} -> {path}")
    for attempt in range(1, DOWNLOAD_TRIES + 1):
        try:
            _download_once(url, part_path)
            os.replace(part_path, path)
            return
        except urllib.error.HTTPError as e:
            if e.code == 416:  # our .part is not a prefix of the file on the server: start again
                os.remove(part_path)
            elif e.code < 500:
                raise DatasetError(f"Cannot download {url} (HTTP {e.code} {e.reason}). {WAYS_OUT}") from None
            error = e
        except urllib.error.URLError as e:  # no connection at all: DNS failure, refused, connect timeout
            if isinstance(e.reason, socket.gaierror) or attempt >= CONNECT_TRIES:
                raise DatasetError(f"Cannot download {url} ({e.reason}). {WAYS_OUT}") from None
            error = e
        except (http.client.HTTPException, ConnectionError, TimeoutError, ssl.SSLError) as e:  # lost mid-file
            error = e
        if attempt < DOWNLOAD_TRIES:
            wait = RETRY_BACKOFF_S * 2 ** (attempt - 1)
            print(f"download failed ({error}); try {attempt + 1}/{DOWNLOAD_TRIES} in {wait:g} s")
            time.sleep(wait)
    raise DatasetError(f"Cannot download {url} ({error}). {WAYS_OUT}")


def _download_once(url: str, part_path: str) -> None:
    """One HTTP request, streamed to part_path in chunks; continues an existing .part with a Range request."""
    have = os.path.getsize(part_path) if os.path.exists(part_path) else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        resumed = response.status == 206 and response.headers.get("Content-Range", "").startswith(f"bytes {have}-")
        if response.status == 206 and not resumed:
            open(part_path, "wb").close()  # the next try starts from zero
            raise ConnectionError(f"unexpected Content-Range {response.headers.get('Content-Range')!r}")
        if have and not resumed:
            print("server does not resume downloads: starting again from zero")
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length else None
        with open(part_path, "ab" if resumed else "wb") as f, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, unit_divisor=1024,
                desc=os.path.basename(part_path)) as bar:
            while chunk := response.read(CHUNK_BYTES):
                f.write(chunk)
                bar.update(len(chunk))
                have += len(chunk)
    if total is not None and have < total:  # urllib returns a cut-off body without an error
        raise ConnectionError(f"connection closed after {have} of {total} bytes")


# -----------------------------------------------------------------------------
# verify and extract


def extract_archive(archive: str, dataset_dir: str) -> None:
    """Reads the whole archive while extracting it to <dataset_dir>.tmp, then renames that to dataset_dir.

    Every byte is read (zip CRCs via testzip, every tar member) before the folder gets its
    marker and its final name, so a corrupt archive never leaves a usable-looking folder.
    """
    tmp_dir = dataset_dir + ".tmp"
    shutil.rmtree(tmp_dir, ignore_errors=True)
    os.makedirs(tmp_dir)
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, tmp_dir)
        elif tarfile.is_tarfile(archive):
            _extract_words_tgz(archive, tmp_dir)
        else:
            raise DatasetError(f"{archive} is neither a zip nor a tar archive (corrupt or incomplete?). "
                               "Delete it and download it again.")
        with open(os.path.join(tmp_dir, MARKER), "w") as f:
            f.write(f"extracted from {archive}\n")
        if os.path.exists(dataset_dir):
            shutil.rmtree(dataset_dir)
        os.replace(tmp_dir, dataset_dir)
    except tarfile.FilterError as e:  # tar member or link pointing outside the folder
        raise DatasetError(f"{archive}: unsafe member ({e}); refusing to extract. "
                           "Delete it and download IAM_Words.zip again.") from None
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as e:
        raise DatasetError(f"{archive} is corrupt ({e}). Delete it and download it again.") from None
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    print(f"extracted {archive} -> {dataset_dir}")


def _extract_zip(archive: str, tmp_dir: str) -> None:
    """IAM_Words.zip: words.txt and words.tgz, possibly under a top folder."""
    with zipfile.ZipFile(archive) as zf:
        for name in zf.namelist():
            _check_inside(tmp_dir, name, archive)
        print(f"verifying {archive}")
        bad_member = zf.testzip()
        if bad_member:
            raise DatasetError(f"{archive} is corrupt ({bad_member} fails its CRC check). "
                               "Delete it and download it again.")
        by_basename = {posixpath.basename(name): name for name in zf.namelist()}
        missing = [name for name in ("words.txt", "words.tgz") if name not in by_basename]
        if missing:
            raise DatasetError(f"{archive} holds no {' and no '.join(missing)}: "
                               "expected IAM_Words.zip with words.txt and words.tgz.")
        with zf.open(by_basename["words.txt"]) as src, open(os.path.join(tmp_dir, "words.txt"), "wb") as dst:
            shutil.copyfileobj(src, dst)
        with zf.open(by_basename["words.tgz"]) as src, tarfile.open(fileobj=src, mode="r|*") as tar:
            _extract_tar(tar, archive, os.path.join(tmp_dir, "words"))


def _extract_words_tgz(archive: str, tmp_dir: str) -> None:
    """A bare words.tgz, as IAM distributes it: words.txt (from IAM's ascii.tgz) must lie next to it."""
    words_txt = os.path.join(os.path.dirname(archive), "words.txt")
    if not os.path.isfile(words_txt):
        raise DatasetError(f"{archive} is a tar archive of images, but {words_txt} is missing: "
                           "put IAM's words.txt next to it, or pass IAM_Words.zip instead.")
    shutil.copyfile(words_txt, os.path.join(tmp_dir, "words.txt"))
    with tarfile.open(archive, mode="r|*") as tar:
        _extract_tar(tar, archive, os.path.join(tmp_dir, "words"))


def _extract_tar(tar: tarfile.TarFile, archive: str, dest: str) -> None:
    """Extracts member by member as the stream is read; filter="data" refuses links out of dest."""
    for member in tqdm(tar, desc="extracting", unit=" files"):
        _check_inside(dest, member.name, archive)
        tar.extract(member, dest, filter="data")


def _check_inside(dest: str, name: str, archive: str) -> None:
    """Refuses absolute member names and names that resolve outside dest (../, or through a symlink)."""
    root = os.path.realpath(dest)
    target = os.path.realpath(os.path.join(dest, name))
    if os.path.isabs(name) or (target != root and not target.startswith(root + os.sep)):
        raise DatasetError(f"{archive}: member {name!r} lands outside the folder it is extracted to; "
                           "refusing to extract. Delete it and download IAM_Words.zip again.")


# -----------------------------------------------------------------------------
# parse words.txt and lines.txt


class Layout(NamedTuple):
    """What differs between IAM's words.txt and lines.txt; the rest of their parsing is one code."""
    name: str  # "words" or "lines": the file is <name>.txt, the images are under <name>/
    id_pattern: re.Pattern
    id_example: str
    er_flag: str  # the flag IAM gives a bad segmentation: "er" in words.txt, "err" in lines.txt
    space: str  # what stands for a space in a transcription ("|" in lines.txt)


WORD_ID = re.compile(r"[A-Za-z0-9]+-[A-Za-z0-9]+-\d+-\d+")  # a01-000u-00-00: form a01-000u, line 00, word 00
LINE_ID = re.compile(r"[A-Za-z0-9]+-[A-Za-z0-9]+-\d+")  # a01-000u-00: form a01-000u, line 00
WORDS = Layout("words", WORD_ID, "a01-000u-00-00", er_flag="er", space=" ")
LINES = Layout("lines", LINE_ID, "a01-000u-00", er_flag="err", space="|")
MIN_FIELDS = 9  # words: id flag graylevel x y w h tag text; lines: id flag graylevel components x y w h text


def parse_words_txt(dataset_dir: str, drop_er: bool = True, check_images: bool = True) -> list[tuple[str, str, str]]:
    """Reads dataset_dir/words.txt and returns [(word_id, image_path, label), ...]; prints a summary.

    A data line is `a01-000u-00-00 ok 154 408 768 27 51 AT A`: id, segmentation flag,
    graylevel, box, tag and the transcription as the LAST field (some datasets in this
    layout add a field, so it is not always the 9th). IAM flags words whose box is wrong
    `er`: the image then shows something else than the label says, so drop_er=True drops
    them. Bad lines and missing, empty or unreadable images (IAM has a few, e.g.
    a01-117-05-02 and r06-022-03-05) are skipped and reported; training goes on.
    """
    return parse_iam_txt(dataset_dir, WORDS, drop_er, check_images)


def parse_lines_txt(dataset_dir: str, drop_er: bool = True, check_images: bool = True) -> list[tuple[str, str, str]]:
    """Reads dataset_dir/lines.txt (IAM's line layout, images in lines/a01/a01-000u/a01-000u-00.png)
    and returns [(line_id, image_path, label), ...]; prints a summary, as parse_words_txt.

    A data line is `a01-000u-00 ok 154 19 408 746 1661 89 A|MOVE|to|stop|Mr.|Gaitskell|from`:
    id, segmentation flag (ok, or err for a line IAM segmented badly, dropped with drop_er),
    graylevel, number of components, box, and the transcription, where `|` is a space.
    """
    return parse_iam_txt(dataset_dir, LINES, drop_er, check_images)


def parse_iam_txt(dataset_dir: str, layout: Layout, drop_er: bool, check_images: bool) -> list[tuple[str, str, str]]:
    """words.txt or lines.txt (layout says which) -> (id, image path, label) rows, with the checks,
    the skip counts and the summary both share."""
    path = os.path.join(dataset_dir, f"{layout.name}.txt")
    if not os.path.isfile(path):
        raise DatasetError(f"{path} not found: the data folder must hold {layout.name}.txt and {layout.name}/ "
                           f"(IAM {layout.name} layout).")
    rows, skipped, malformed, n_lines = _read_iam_txt(path, dataset_dir, layout, drop_er)
    if check_images:
        rows, unreadable = drop_unreadable(rows)
        for problem, ids in unreadable.items():
            skipped[problem].extend(ids)

    print(f"{path}: {n_lines} data lines read, {len(rows)} {layout.name} kept")
    if malformed:
        print(f"  skipped malformed line: {len(malformed)}")
        for message in malformed[:10]:
            print(f"    {message}")
        if len(malformed) > 10:
            print(f"    ... and {len(malformed) - 10} more")
    for reason, ids in skipped.items():
        action = "kept" if reason == _er_reason(layout) and not drop_er else "skipped"
        print(f"  {action} {reason}: {len(ids)} (e.g. {', '.join(ids[:3])})")
    if not rows:
        raise DatasetError(f"{path}: no usable {layout.name} (see the summary above).")
    return rows


def _read_iam_txt(path, dataset_dir, layout, drop_er):
    """The data lines of path as (rows, {reason skipped: [ids]}, [malformed line messages], data line count)."""
    rows, skipped, malformed, n_lines = [], defaultdict(list), [], 0
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise DatasetError(f"{path} line {line_no} is not valid UTF-8 ({e.reason} at byte {e.start}): "
                                   "save the file as UTF-8.") from None
            if not line.strip() or line.startswith("#"):
                continue
            n_lines += 1
            fields = line.split(" ")
            problem = _line_problem(fields, layout)
            if problem:
                malformed.append(f"line {line_no}: {problem}")
                continue
            sample_id, flag, label = fields[0], fields[1], _label(fields, layout)
            if flag == layout.er_flag:
                skipped[_er_reason(layout)].append(sample_id)
                if drop_er:
                    continue
            parts = sample_id.split("-")
            rows.append((sample_id, os.path.join(dataset_dir, layout.name, parts[0], f"{parts[0]}-{parts[1]}",
                                                 f"{sample_id}.png"), label))
    return rows, skipped, malformed, n_lines


def _er_reason(layout: Layout) -> str:
    return f"marked {layout.er_flag} (bad segmentation box)"


def _label(fields: list[str], layout: Layout) -> str:
    """The transcription, the last field, with the layout's space mark as spaces (none at the ends)."""
    return fields[-1].replace(layout.space, " ").strip(" ")


def _line_problem(fields: list[str], layout: Layout) -> str | None:
    """Why a words.txt or lines.txt data line cannot be used, or None."""
    if len(fields) < MIN_FIELDS:
        return f"{len(fields)} fields, need at least {MIN_FIELDS}"
    if not layout.id_pattern.fullmatch(fields[0]):
        return f"id {fields[0]!r} is not like {layout.id_example}"
    if fields[1] not in ("ok", layout.er_flag):
        return f"segmentation flag {fields[1]!r} is not ok or {layout.er_flag}"
    if not _label(fields, layout):
        return "empty transcription"
    return None


def drop_unreadable(rows):
    """(name, image path, label) rows -> (the rows whose image can be trained on, {problem: [the
    others' names]}), for the summary a dataset's parser prints."""
    problems = image_problems([path for _, path, _ in rows])
    unreadable = defaultdict(list)
    for (name, _, _), problem in zip(rows, problems):
        if problem:
            unreadable[problem].append(name)
    return [row for row, problem in zip(rows, problems) if problem is None], unreadable


def image_problems(image_paths: list[str]) -> list[str | None]:
    """Why each image cannot be trained on (None: it can), checked in parallel with a progress bar."""
    with ThreadPoolExecutor() as pool:  # cv2 releases the GIL while decoding
        return list(tqdm(pool.map(_image_problem, image_paths), total=len(image_paths), desc="checking images",
                         unit=" img"))


def _image_problem(image_path: str) -> str | None:
    """Why an image cannot be trained on, or None. A half-size decode still reads every byte, so it
    catches truncated and garbage PNGs, at a fraction of the memory."""
    try:
        size = os.path.getsize(image_path)
    except OSError:
        return "image missing"
    if size == 0:
        return "image empty (0 bytes)"
    image = cv2.imread(image_path, cv2.IMREAD_REDUCED_GRAYSCALE_2)
    if image is None or image.size == 0:
        return "image unreadable"
    return None


# -----------------------------------------------------------------------------
# split


def split_dataset(words, split: str, dataset_dir: str, seed: int = 42, val_fraction: float = 0.1) -> dict[str, list[list[str]]]:
    """Returns {"train": [[image_path, label], ...], "val": [...], "test": [...]} ("test" may be empty).

    random: the original tutorial's 90/10 split of shuffled words. Quick, but the same writer
        lands in train and val, so val accuracy is optimistic.
    aachen: the RWTH Aachen split of IAM by form (page), with writers disjoint between
        train, val and test: the split papers report numbers on.
    files:  dataset_dir/splits/train.txt and valid.txt, word (or line) ids one per line.
    auto:   files when both exist, else random.
    """
    train_txt, valid_txt = (os.path.join(dataset_dir, "splits", name) for name in ("train.txt", "valid.txt"))
    if split == "auto":
        split = "files" if os.path.isfile(train_txt) and os.path.isfile(valid_txt) else "random"
        print(f"split auto: using {split}")

    if split == "random":
        samples = [[image_path, label] for _, image_path, label in words]
        random.Random(seed).shuffle(samples)  # own generator: the split does not depend on global RNG state
        n_val = round(len(samples) * val_fraction)
        parts = {"train": samples[n_val:], "val": samples[:n_val], "test": []}
    elif split == "aachen":
        part_of_form = {}
        for part, name in (("train", "train.txt"), ("val", "validation.txt"), ("test", "test.txt")):
            part_of_form.update((form, part) for form in _read_ids(os.path.join(AACHEN_SPLITS_DIR, name)))
        parts, n_dropped = _split_by(words, lambda word_id: part_of_form.get("-".join(word_id.split("-")[:2])))
        print(f"split aachen: dropped {n_dropped} words whose form is in none of the Aachen lists")
    elif split == "files":
        for path in (train_txt, valid_txt):
            if not os.path.isfile(path):
                raise DatasetError(f"{path} not found: split 'files' needs splits/train.txt and splits/valid.txt "
                                   f"in {dataset_dir} (word or line ids, one per line).")
        part_of_id = {word_id: "val" for word_id in _read_ids(valid_txt)}
        part_of_id.update((word_id, "train") for word_id in _read_ids(train_txt))
        n_unknown = len(part_of_id.keys() - {word_id for word_id, _, _ in words})
        parts, n_dropped = _split_by(words, part_of_id.get)
        print(f"split files: {n_unknown} listed ids not among the kept words, "
              f"{n_dropped} kept words in neither list")
    else:
        raise ValueError(f"unknown split {split!r}: use random, aachen, files or auto")

    print(f"split {split}: {len(parts['train'])} train, {len(parts['val'])} val, {len(parts['test'])} test")
    if not parts["train"] or not parts["val"]:
        raise DatasetError(f"split {split!r} gives {len(parts['train'])} train and {len(parts['val'])} val "
                           "samples; both must be non-empty: check words.txt and the split lists.")
    return parts


def _split_by(words, part_of) -> tuple[dict[str, list[list[str]]], int]:
    """Puts each word into the part part_of(word_id) names; words it names no part for are dropped."""
    parts, n_dropped = {"train": [], "val": [], "test": []}, 0
    for word_id, image_path, label in words:
        part = part_of(word_id)
        if part:
            parts[part].append([image_path, label])
        else:
            n_dropped += 1
    return parts, n_dropped


def _read_ids(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]
