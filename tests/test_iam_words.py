"""Tests for iam_words.py: the real download code against a local HTTP server, a small fake IAM archive."""

import io
import json
import os
import socket
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest

import htr.data.iam as iam_words
from htr.data.iam import DatasetError, download_iam_words, parse_words_txt, split_dataset

GW_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "gw_words")

WORDS_TXT = """\
#--- a fake IAM words.txt ---
# format: wordid ok/er graylevel x y w h tag transcription
a01-000u-00-00 ok 154 408 768 27 51 AT A
a01-000u-00-01 ok 154 507 766 213 48 NN MOVE
a01-000u-00-02 er 154 796 764 70 50 TO to
a01-000u-00-03 ok 154 919 757 166 78 VB stop
a01-000u-01-00 ok 156 395 932 441 100 NN Gaitskell
c03-000a-00-00 ok 200 1 0 0 10 10 NN extra-field
b02-010-00-00 ok 170 10 10 50 20 NN missing
b02-010-00-01 ok 170 10 10 50 20 NN garbage
b02-010-00-02 ok 170 10 10 50 20 NN empty
b02-010-00-03 ok 170 10 10 50 20 NN truncated
a01-000u-01-01 ok 156 395 932
a01-000u-01-02 err 156 395 932 441 100 NN bad-flag
"""
GOOD_IDS = ["a01-000u-00-00", "a01-000u-00-01", "a01-000u-00-03", "a01-000u-01-00", "c03-000a-00-00"]


def png_bytes(seed):
    image = np.random.default_rng(seed).integers(0, 256, (48, 160), dtype=np.uint8)
    return cv2.imencode(".png", image)[1].tobytes()


def member_path(word_id):
    parts = word_id.split("-")
    return f"{parts[0]}/{parts[0]}-{parts[1]}/{word_id}.png"


def make_tgz(extra_members=()):
    """words.tgz: good PNGs, the er word's PNG, garbage, empty and truncated PNGs; b02-010-00-00 is missing."""
    files = {member_path(word_id): png_bytes(i) for i, word_id in enumerate(GOOD_IDS + ["a01-000u-00-02"])}
    files[member_path("b02-010-00-01")] = b"this is not a png at all" * 10
    files[member_path("b02-010-00-02")] = b""
    files[member_path("b02-010-00-03")] = png_bytes(99)[:500]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra_members:
            tar.addfile(info, io.BytesIO(b"evil") if info.isfile() else None)
    return buffer.getvalue()


def make_zip(tgz=None, extra=(), compression=zipfile.ZIP_DEFLATED):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        zf.writestr("IAM_Words/words.txt", WORDS_TXT)
        zf.writestr("IAM_Words/words.tgz", make_tgz() if tgz is None else tgz)
        for name in extra:
            zf.writestr(name, b"evil")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def zip_bytes():
    return make_zip()


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(iam_words, "RETRY_BACKOFF_S", 0.01)


class FileServer:
    """Serves one file on 127.0.0.1; can ignore Range, drop the first connection mid-file, or answer the
    first requests with the HTTP error codes in errors."""

    def __init__(self, data, ranges=True, drop_first=False, errors=()):
        self.data, self.ranges, self.drop_first, self.errors = data, ranges, drop_first, list(errors)
        self.range_headers = []  # the Range header of each request, None when absent
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                first = not owner.range_headers
                range_header = self.headers.get("Range")
                owner.range_headers.append(range_header)
                if len(owner.range_headers) <= len(owner.errors):
                    self.send_error(owner.errors[len(owner.range_headers) - 1])
                    return
                start = 0
                if range_header and owner.ranges:
                    start = int(range_header.removeprefix("bytes=").rstrip("-"))
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(owner.data) - 1}/{len(owner.data)}")
                else:
                    self.send_response(200)
                body = owner.data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if owner.drop_first and first:
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/IAM_Words.zip"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(data, **options):
        servers.append(FileServer(data, **options))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def dead_url():
    """A URL on 127.0.0.1 with nothing listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/IAM_Words.zip"


def write_file(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


# -----------------------------------------------------------------------------
# download and extraction


def test_download_extract_parse(tmp_path, serve, zip_bytes, capsys):
    server = serve(zip_bytes)
    dataset_dir = download_iam_words(str(tmp_path / "Datasets" / "IAM_Words"), url=server.url)
    assert os.path.isfile(os.path.join(dataset_dir, iam_words.MARKER))
    assert (tmp_path / "Datasets" / "IAM_Words.zip").read_bytes() == zip_bytes
    assert not (tmp_path / "Datasets" / "IAM_Words.zip.part").exists()
    assert os.path.isfile(os.path.join(dataset_dir, "words", member_path("a01-000u-00-00")))

    capsys.readouterr()
    words = parse_words_txt(dataset_dir)
    out = capsys.readouterr().out
    assert [word_id for word_id, _, _ in words] == GOOD_IDS
    assert words[0] == ("a01-000u-00-00", os.path.join(dataset_dir, "words", "a01", "a01-000u",
                                                        "a01-000u-00-00.png"), "A")
    assert words[-1][2] == "extra-field"  # transcription is the last field, also with 10 fields
    assert "12 data lines read, 5 words kept" in out
    assert "skipped marked er (bad segmentation box): 1" in out
    assert "skipped image missing: 1 (e.g. b02-010-00-00)" in out
    assert "skipped image empty (0 bytes): 1 (e.g. b02-010-00-02)" in out
    assert "skipped image unreadable: 2 (e.g. b02-010-00-01, b02-010-00-03)" in out
    assert "skipped malformed line: 2" in out
    assert "line 13: 5 fields, need at least 9" in out
    assert "line 14: segmentation flag 'err' is not ok or er" in out

    words = parse_words_txt(dataset_dir, drop_er=False)
    assert "a01-000u-00-02" in [word_id for word_id, _, _ in words] and len(words) == 6
    assert "kept marked er (bad segmentation box): 1" in capsys.readouterr().out


def test_resume_after_connection_dropped(tmp_path, serve, zip_bytes, capsys):
    server = serve(zip_bytes, drop_first=True)
    dataset_dir = download_iam_words(str(tmp_path / "IAM_Words"), url=server.url)
    assert server.range_headers == [None, f"bytes={len(zip_bytes) // 2}-"]
    assert (tmp_path / "IAM_Words.zip").read_bytes() == zip_bytes
    assert len(parse_words_txt(dataset_dir)) == 5


def test_server_without_range_support_restarts(tmp_path, serve, zip_bytes, capsys):
    server = serve(zip_bytes, ranges=False, drop_first=True)
    download_iam_words(str(tmp_path / "IAM_Words"), url=server.url)
    assert server.range_headers == [None, f"bytes={len(zip_bytes) // 2}-"]
    assert "starting again from zero" in capsys.readouterr().out
    assert (tmp_path / "IAM_Words.zip").read_bytes() == zip_bytes


def test_retry_after_server_error(tmp_path, serve, zip_bytes):
    server = serve(zip_bytes, errors=[500])
    download_iam_words(str(tmp_path / "IAM_Words"), url=server.url)
    assert len(server.range_headers) == 2
    assert (tmp_path / "IAM_Words.zip").read_bytes() == zip_bytes


def test_unreachable_url_fails_fast_with_ways_out(tmp_path):
    url = dead_url()
    start = time.monotonic()
    with pytest.raises(DatasetError) as error:
        download_iam_words(str(tmp_path / "IAM_Words"), url=url)
    assert time.monotonic() - start < 10
    message = str(error.value)
    assert url in message and "--archive" in message and "--data-dir" in message and "\n" not in message
    assert os.listdir(tmp_path) == []


def test_http_404_is_not_retried(tmp_path, serve, zip_bytes):
    server = serve(zip_bytes, errors=[404])
    with pytest.raises(DatasetError, match="HTTP 404 .*--archive"):
        download_iam_words(str(tmp_path / "IAM_Words"), url=server.url)
    assert len(server.range_headers) == 1


def flip_byte_in_member(data):
    data = bytearray(data)
    data[len(data) // 3] ^= 0xFF
    return bytes(data)


@pytest.mark.parametrize("make_archive", [
    lambda tmp_path, zip_bytes: write_file(tmp_path / "IAM_Words.zip", zip_bytes[:len(zip_bytes) // 2]),
    lambda tmp_path, zip_bytes: write_file(tmp_path / "IAM_Words.zip",
                                           flip_byte_in_member(make_zip(compression=zipfile.ZIP_STORED))),
    lambda tmp_path, zip_bytes: write_file(tmp_path / "IAM_Words.zip", make_zip(tgz=make_tgz()[:3000])),
    lambda tmp_path, zip_bytes: (write_file(tmp_path / "words.txt", WORDS_TXT.encode()),
                                 write_file(tmp_path / "words.tgz", make_tgz()[:3000]))[1],
], ids=["truncated-zip", "zip-crc", "zip-with-truncated-tgz", "truncated-tgz"])
def test_corrupt_archive_is_refused_and_nothing_left(tmp_path, zip_bytes, make_archive):
    archive = make_archive(tmp_path, zip_bytes)
    dataset_dir = str(tmp_path / "out" / "IAM_Words")
    with pytest.raises(DatasetError) as error:
        download_iam_words(dataset_dir, url=dead_url(), archive=archive)
    assert archive in str(error.value) and "download it again" in str(error.value)
    assert not os.path.exists(dataset_dir) and not os.path.exists(dataset_dir + ".tmp")


def test_bare_words_tgz_with_words_txt_beside(tmp_path, capsys):
    archive = write_file(tmp_path / "dl" / "words.tgz", make_tgz())
    with pytest.raises(DatasetError, match="words.txt is missing"):
        download_iam_words(str(tmp_path / "IAM_Words"), url=dead_url(), archive=archive)
    write_file(tmp_path / "dl" / "words.txt", WORDS_TXT.encode())
    dataset_dir = download_iam_words(str(tmp_path / "IAM_Words"), url=dead_url(), archive=archive)
    assert len(parse_words_txt(dataset_dir)) == 5


def test_zip_member_outside_is_refused(tmp_path):
    zip_data = make_zip(extra=["../evil.txt", "IAM_Words/../../evil2.txt"])
    archive = write_file(tmp_path / "dl" / "IAM_Words.zip", zip_data)
    dataset_dir = str(tmp_path / "out" / "IAM_Words")
    with pytest.raises(DatasetError, match="refusing to extract"):
        download_iam_words(dataset_dir, url=dead_url(), archive=archive)
    assert [p.name for p in tmp_path.rglob("evil*")] == []
    assert not os.path.exists(dataset_dir) and not os.path.exists(dataset_dir + ".tmp")


def tar_member(name, type=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = type, linkname, 4 if type == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize("evil", [
    lambda outside: tar_member("../../evil"),
    lambda outside: tar_member(os.path.join(outside, "evil")),
    lambda outside: tar_member("a01/link", tarfile.SYMTYPE, "../../../../evil"),
    lambda outside: tar_member("a01/link", tarfile.SYMTYPE, outside),
    lambda outside: tar_member("a01/hard", tarfile.LNKTYPE, "../../evil"),
], ids=["dotdot", "absolute", "symlink-relative", "symlink-absolute", "hardlink"])
@pytest.mark.parametrize("in_zip", [False, True], ids=["tgz", "zip"])
def test_tar_member_outside_is_refused(tmp_path, evil, in_zip):
    outside = tmp_path / "outside"
    outside.mkdir()
    tgz = make_tgz(extra_members=[evil(str(outside))])
    if in_zip:
        archive = write_file(tmp_path / "a" / "b" / "IAM_Words.zip", make_zip(tgz=tgz))
    else:
        write_file(tmp_path / "a" / "b" / "words.txt", WORDS_TXT.encode())
        archive = write_file(tmp_path / "a" / "b" / "words.tgz", tgz)
    dataset_dir = str(tmp_path / "a" / "b" / "out" / "IAM_Words")
    with pytest.raises(DatasetError, match="refusing to extract"):
        download_iam_words(dataset_dir, url=dead_url(), archive=archive)
    assert [p for p in tmp_path.rglob("evil*")] == [] and os.listdir(outside) == []
    assert not os.path.exists(dataset_dir) and not os.path.exists(dataset_dir + ".tmp")


def test_interrupted_extraction_is_redone(tmp_path, zip_bytes, capsys):
    dataset_dir = tmp_path / "IAM_Words"
    write_file(dataset_dir / "words.txt", b"half written")
    write_file(dataset_dir / "words" / "a01" / "junk.png", b"")
    archive = write_file(tmp_path / "dl" / "IAM_Words.zip", zip_bytes)
    assert download_iam_words(str(dataset_dir), url=dead_url(), archive=archive) == str(dataset_dir)
    assert "has no .extracted marker" in capsys.readouterr().out
    assert (dataset_dir / iam_words.MARKER).exists() and not (dataset_dir / "words" / "a01" / "junk.png").exists()
    assert (dataset_dir / "words.txt").read_text() == WORDS_TXT


def test_complete_folder_is_reused_without_network(tmp_path, serve, zip_bytes):
    server = serve(zip_bytes)
    dataset_dir = download_iam_words(str(tmp_path / "IAM_Words"), url=server.url)
    server.close()
    os.remove(tmp_path / "IAM_Words.zip")
    assert download_iam_words(dataset_dir, url=server.url) == dataset_dir
    assert download_iam_words(dataset_dir + os.sep, url=dead_url()) == dataset_dir
    assert len(server.range_headers) == 1


def test_missing_archive_argument(tmp_path):
    with pytest.raises(DatasetError, match="--archive .*nope.zip not found"):
        download_iam_words(str(tmp_path / "IAM_Words"), archive=str(tmp_path / "nope.zip"))


# -----------------------------------------------------------------------------
# parsing


def test_parse_reports_missing_empty_and_non_utf8_words_txt(tmp_path):
    with pytest.raises(DatasetError, match="words.txt not found"):
        parse_words_txt(str(tmp_path))
    write_file(tmp_path / "words.txt", b"# only a comment\nbroken line\n")
    with pytest.raises(DatasetError, match="no usable words"):
        parse_words_txt(str(tmp_path))
    write_file(tmp_path / "words.txt", b"# ok\na01-000u-00-00 ok 154 408 768 27 51 AT caf\xe9\n")
    with pytest.raises(DatasetError, match=r"line 2 is not valid UTF-8") as error:
        parse_words_txt(str(tmp_path))
    assert "\n" not in str(error.value)


def test_parse_reports_first_ten_malformed_lines(tmp_path, capsys):
    lines = [
        "a01-000u-00-00 ok 154 408 768 27 51 AT caf\u00e9",
        "x-y ok 1 2 3 4 5 6 z",
        "a01-000u-00-01 ok 154 408 768 27 51 AT ",
    ] + [f"bad{i}" for i in range(15)]
    write_file(tmp_path / "words.txt", "\n".join(lines).encode())
    words = parse_words_txt(str(tmp_path), check_images=False)
    out = capsys.readouterr().out
    image_path = os.path.join(str(tmp_path), "words", "a01", "a01-000u", "a01-000u-00-00.png")
    assert words == [("a01-000u-00-00", image_path, "caf\u00e9")]
    assert "skipped malformed line: 17" in out
    assert "line 2: id 'x-y' is not like a01-000u-00-00" in out and "line 3: empty transcription" in out
    assert "line 11: 1 fields, need at least 9" in out and "line 12:" not in out and "... and 7 more" in out


# -----------------------------------------------------------------------------
# splits


def fake_words(word_ids):
    return [(word_id, f"/x/{word_id}.png", f"label-{word_id}") for word_id in word_ids]


def test_random_split_is_reproducible_90_10(tmp_path, capsys):
    words = fake_words([f"a01-000u-{line:02d}-{word:02d}" for line in range(10) for word in range(10)])
    first = split_dataset(words, "random", str(tmp_path), seed=1)
    assert split_dataset(words, "random", str(tmp_path), seed=1) == first
    assert split_dataset(words, "random", str(tmp_path), seed=2) != first
    assert (len(first["train"]), len(first["val"]), first["test"]) == (90, 10, [])
    assert sorted(first["train"] + first["val"]) == sorted([path, label] for _, path, label in words)
    assert "split random: 90 train, 10 val, 0 test" in capsys.readouterr().out


def test_aachen_split_by_form(tmp_path, capsys):
    lists = {name: iam_words._read_ids(os.path.join(iam_words.AACHEN_SPLITS_DIR, f"{name}.txt"))
             for name in ("train", "validation", "test")}
    forms = {"train": lists["train"][:3], "val": lists["validation"][:2], "test": lists["test"][:2]}
    all_listed = set(lists["train"] + lists["validation"] + lists["test"])
    assert "zzz-999" not in all_listed
    words = fake_words([f"{form}-00-{i:02d}" for part in forms for form in forms[part] for i in range(2)]
                       + ["zzz-999-00-00", "zzz-999-00-01", "zzz-999-01-00"])
    parts = split_dataset(words, "aachen", str(tmp_path))
    for part in ("train", "val", "test"):
        assert parts[part] == [[f"/x/{form}-00-{i:02d}.png", f"label-{form}-00-{i:02d}"]
                               for form in forms[part] for i in range(2)]
    out = capsys.readouterr().out
    assert "dropped 3 words" in out and "split aachen: 6 train, 4 val, 4 test" in out


def test_files_and_auto_split(tmp_path, capsys):
    words = fake_words([f"g27-270x-01-{i:02d}" for i in range(6)])
    with pytest.raises(DatasetError, match="splits/train.txt and splits/valid.txt"):
        split_dataset(words, "files", str(tmp_path))
    parts = split_dataset(words, "auto", str(tmp_path))
    assert "split auto: using random" in capsys.readouterr().out and len(parts["val"]) == 1

    train_ids = b"g27-270x-01-00\ng27-270x-01-01\ng27-270x-01-02\ng27-270x-01-99\n"  # -99 was not kept
    write_file(tmp_path / "splits" / "train.txt", train_ids)
    write_file(tmp_path / "splits" / "valid.txt", b"g27-270x-01-03\ng27-270x-01-04\n")
    parts = split_dataset(words, "auto", str(tmp_path))
    out = capsys.readouterr().out
    assert "split auto: using files" in out
    assert "1 listed ids not among the kept words, 1 kept words in neither list" in out
    assert [path for path, _ in parts["train"]] == [f"/x/g27-270x-01-0{i}.png" for i in range(3)]
    assert [path for path, _ in parts["val"]] == [f"/x/g27-270x-01-0{i}.png" for i in (3, 4)]
    assert parts["test"] == []


def test_split_without_val_samples_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="1 train and 0 val"):
        split_dataset(fake_words(["a01-000u-00-00"]), "random", str(tmp_path))


@pytest.mark.skipif(not os.path.isfile(os.path.join(GW_DIR, "words.txt")), reason="../shared/data/gw_words absent")
def test_george_washington_words(capsys):
    words = parse_words_txt(GW_DIR)
    assert len(words) == 3726
    parts = split_dataset(words, "auto", GW_DIR)
    assert (len(parts["train"]), len(parts["val"]), len(parts["test"])) == (2433, 1293, 0)
    assert "split auto: using files" in capsys.readouterr().out


# -----------------------------------------------------------------------------
# IAM's defaults in train.py: the Aachen split, the test set's scores, the run's length


def aachen_archive(tmp_path):
    """An IAM_Words.zip like the real one whose 60 words (the demo generator's images) sit on forms
    of the Aachen lists: 40 on training forms, 10 on validation forms, 10 on test forms."""
    from htr.data.demo import generate_demo_words
    demo_dir = generate_demo_words(str(tmp_path / "demo"), num_words=60, seed=3)
    demo_words = parse_words_txt(demo_dir)
    forms = {name: iam_words._read_ids(os.path.join(iam_words.AACHEN_SPLITS_DIR, f"{name}.txt"))
             for name in ("train", "validation", "test")}
    word_forms = [forms["train"][i // 10] for i in range(40)] + [forms["validation"][i // 5] for i in range(10)] \
        + [forms["test"][i // 5] for i in range(10)]
    lines, files = [], {}
    for index, ((_, image_path, label), form) in enumerate(zip(demo_words, word_forms)):
        word_id = f"{form}-00-{index:02d}"
        lines.append(f"{word_id} ok 154 0 0 10 10 NN {label}")
        with open(image_path, "rb") as f:
            files[member_path(word_id)] = f.read()
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("IAM_Words/words.txt", "\n".join(lines) + "\n")
        zf.writestr("IAM_Words/words.tgz", tgz.getvalue())
    return archive.getvalue()


@pytest.mark.slow
def test_iam_trains_on_the_aachen_split_and_scores_the_test_set(tmp_path, serve):
    from conftest import run_script
    server = serve(aachen_archive(tmp_path))
    model_dir = tmp_path / "model"
    # No --epochs: the default length for 40 words is 12,500 epochs; --minutes ends it after a few seconds.
    result = run_script("train.py", "--dataset-url", server.url, "--batch-size", 8, "--minutes", 0.05,
                        "--model-dir", model_dir, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "split auto: IAM, so the RWTH Aachen split by writer" in out
    assert "split aachen: 40 train, 10 val, 10 test" in out
    assert "Training for 12500 epochs (500,000 images" in out
    assert "The first epoch took" in out and "the whole run, 12500 epochs, takes about" in out
    assert "--minutes 0.05 ends it sooner." in out

    with open(model_dir / "test_scores.json") as f:
        scores = json.load(f)
    assert scores["words"] == 10
    assert (f"Test set, 10 words by writers unseen in training: CER {scores['corpus_cer']:.2%}, average CER "
            f"{scores['average_cer']:.2%}, word accuracy {scores['word_accuracy']:.2%}") in out
    # The same figures as inferenceModel.py gives on test.csv.
    result = run_script("inferenceModel.py", "--model", model_dir, "--csv", model_dir / "test.csv", cwd=tmp_path)
    assert f"Average CER: {scores['average_cer']:.4f}" in result.stdout


def test_run_time_estimate_points_a_cpu_at_minutes():
    from htr.training.callbacks import run_time_estimate
    assert run_time_estimate(1800, 20) == ("The first epoch took 30 minutes: the whole run, 20 epochs, takes about "
                                           "10.0 hours on this CPU. To train for a set time with the whole "
                                           "learning-rate schedule, give --minutes (e.g. --minutes 120), or train "
                                           "on a GPU.")
    assert run_time_estimate(1800, 20, on_gpu=True).endswith("takes about 10.0 hours.")
    assert run_time_estimate(1800, 20, minutes=60).endswith("; --minutes 60 ends it sooner.")
    assert run_time_estimate(6, 200) == "The first epoch took 6 seconds: the whole run, 200 epochs, takes about 20 minutes."
