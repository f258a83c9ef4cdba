"""Quality benchmarks, one subcommand each.

    python -m benchmarks.quality photos --model DIR [--csv FILE] [--images N] [--seed S]
    python -m benchmarks.quality budget --minutes M --data-dir DIR [--variant "NAME: FLAGS" ...]
    python -m benchmarks.quality pages --model DIR --data-dir DIR [--pages N] [--lines N] [--seed S] [--line-pitch UNITS]
    python -m benchmarks.quality lines --model DIR --csv FILE [--decoder greedy|beam] [--lexicon FILE]
    python -m benchmarks.quality real-pages --model DIR (--gw-pages DIR [--pages 300-304] [--gw-lines DIR] | --alto-dir DIR)
    python -m benchmarks.quality curve --model DIR
    python -m benchmarks.quality find-lines (--gw-pages DIR [--pages 300-304] | --alto-dir DIR [--part measured|develop])
    python -m benchmarks.quality flatten --gw-pages DIR [--pages 300-304] [--seed S] [--paper-margin SHARE]

photos: how much worse a model reads words photographed with a phone than scanned: its CER on a
labelled CSV's images and on photo-like copies of them (htr.data.augment.photo_like: tinted paper,
uneven light and shadow, grey/brown/blue ink, blur, noise, a loose crop, JPEG), greedy decoding.

budget: what a user gets from M minutes of training: train.py --minutes M with the tutorial preset,
then the defaults (then each --variant), on DIR's splits/; each ONNX export is scored on the
validation split; one table: CER, average CER, word accuracy, epochs, samples/s.

pages: how well read_page reads whole pages. compose_page lays real word images out as a page
(each source line's words left to right, lines close enough that ascenders and descenders touch,
toned paper, uneven light, noise, a rotation within +-2 degrees, every other page a JPEG) and
keeps every word's true box and text. Word detection: precision, recall and F1 of the found boxes
against the true ones at IoU >= 0.5. Page text: CER of the page's text (whitespace normalised)
against the truth, beside the same model's CER on the same words cropped by hand (the dataset's
word images, joined the same way). Then each of those word images on its own through read_page, as a
user may upload one word: how often it finds one word, and its CER beside predict's. Last line: pages
per second of read_page on the pages (one pass; composing and scoring are not timed).

lines: how well a model reads a labelled CSV of images (lines, or words): CER, WER and images read
exactly right, and images per second from files to text with onnxruntime on this machine's cores
(inferenceModel.py's batched path, best of REPEATS rounds).

real-pages: read_page on real page scans (or, --photographed, phone photos of them) with their truth (gw_pages: every word's ink box, line and
text): lines found (precision, recall, F1 at IoU >= 0.5 against each true line's box, the box of its
words), word boxes (the same against each word's ink box), page CER (whitespace normalised) beside the
same model's CER on the same pages' lines cropped by hand (gw_lines, when given), and pages per second
of read_page (one pass). --alto-dir: an export's pages (ALTO v4 or PAGE XML beside the scans, a line's
box and text its truth) of the documents train.py --data-dir would validate on, writers a model trained
on the export never saw; lines found and page CER only (an export has no word boxes to measure against).
curve: validation CER against minutes of training, from a model folder's TensorBoard logs (each
epoch's validation CER, the average over images, and the time it was logged, counted from the start
of training): what more minutes, or a faster machine, would buy.

find-lines: how well read_page's line finder (htr.pages.line_finder.find_page_lines; --finder
classical: htr.pages.lines.find_text_lines alone, network: the trained one alone) finds the text lines of real scans: recall,
precision and F1 of the found line boxes against the true ones at IoU >= 0.5 (one-to-one), lines
found and true, and seconds a page, of the clock and of CPU time (finding only; reading the image
is not timed). --gw-pages: the
George Washington pages (DIR/<page>.json: words with their ink box and line number, a line's box
encloses its words'; the scans in DIR/images/<page>.jpg). --alto-dir: ALTO v4 files beside their
JPEGs (a TextLine with a transcription is a true line, its box HPOS/VPOS/WIDTH/HEIGHT); pages are
named <document>-<n>, one writer a document, and every 5th document in sorted order is the measured
part (--part develop: the others).
flatten: how well htr.pages.photo.flatten_photo recovers a page from a phone photo of it. Each page
scan of DIR (gw_pages: images/<page>.jpg, <page>.json with the true word boxes) is photographed on a
desk (htr.pages.desk.photograph_page: perspective, curl, shadow, warm uneven light, JPEG), then
flattened. Per page and overall: the corner error (pixels of the photo, and per cent of the sheet's
diagonal), the mean IoU of the true word boxes taken into the photo and back onto the flattened page
against the scan's boxes scaled to the flattened page's size, and seconds of flatten_photo.
Each scan lies on a sheet of its own paper colour a little larger (--paper-margin), as a sheet's
edges are paper where a scan's are often dark scanner borders. No model is needed.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree

import cv2
import numpy as np
from mltu.utils.text_utils import edit_distance

from htr.data.augment import photo_like
from htr.data.labels_csv import DatasetError, read_labelled_csv
from htr.data.xml_pages import XmlError, document_of, find_page_image, page_image, read_xml_page, split_by_document, xml_files
from htr.images import UnreadableImage, read_image
from htr.pages.line_finder import BUNDLED, bundled_line_finder, find_lines_with_model, find_page_lines
from htr.pages.lines import find_text_lines
from htr.pages.compose import box_iou, compose_page, dataset_lines, matched_boxes, page_text
from htr.pages.desk import photograph_page
from htr.pages.photo import flatten_photo
from htr.pages.reading import enclosing_box, read_page
from htr.recognizer import CORES, ImageToWordModel, ModelFileError, predict_files
from htr.scoring import confidence_auroc, score

BATCH_SIZE = 64  # inferenceModel.py's default --batch-size
PAPER_MARGIN = 0.03  # photos of pages: each scan first laid on paper this share of its long side larger all round
REPEATS = 3  # lines: the fastest of this many rounds, as timeit does: other programs only ever slow a run


def bench_photos(args):
    """The same model on a labelled CSV's scans and on photo-like copies of them (photo_like;
    image i's copy is drawn from the seed [--seed, i], so every run and every model sees the same photos)."""
    model = ImageToWordModel(args.model)
    csv_path = args.csv or os.path.join(os.path.dirname(model.model_path), "val.csv")
    rows = read_labelled_csv(csv_path)[:args.images]
    scans = []
    for path, _ in rows:
        try:
            scans.append(read_image(path))
        except UnreadableImage as e:
            raise ModelFileError(f"cannot read {path} ({e}); benchmark on readable images") from None
    photos = [photo_like(image, np.random.default_rng([args.seed, index])) for index, image in enumerate(scans)]
    print(f"Model {model.model_path}: {len(rows)} labelled images from {csv_path}, and photo-like copies (seed {args.seed})")
    cer = {}
    for name, images in [("scans", scans), ("photos", photos)]:
        texts, confidences = [], []
        for start in range(0, len(images), BATCH_SIZE):
            batch_texts, batch_confidences = model.predict_batch(images[start:start + BATCH_SIZE])
            texts, confidences = texts + batch_texts, confidences + batch_confidences
        summary = score(rows, texts)[0]
        cer[name] = summary["corpus_cer"]
        print(f"  {name:7} CER {summary['corpus_cer']:7.2%}   average CER {summary['average_cer']:7.2%}   "
              f"word accuracy {summary['word_accuracy']:6.1%}   confidence AUROC {confidence_auroc(rows, texts, confidences):.3f}")
    print(f"  photos read {100 * (cer['photos'] - cer['scans']):+.2f} points of CER against the scans")


def budget_variants(args):
    """[(name, train.py flags), ...]: the tutorial preset, the defaults, then each --variant, every
    one's flags checked by train.py's parser before hours of training start."""
    variants = [("tutorial preset", ["--preset", "tutorial"]), ("defaults", [])]
    for variant in args.variant:
        name, colon, flags = variant.partition(":")
        if not (colon and name.strip()):
            sys.exit(f'error: --variant "{variant}": write it as "NAME: TRAIN.PY FLAGS", e.g. "tutorial model: --architecture tutorial"')
        variants.append((name.strip(), flags.split()))
    from htr.training.command_line import parse_train_args  # after the check above, which needs no training code
    for name, flags in variants:
        try:
            parse_train_args(["--data-dir", args.data_dir, "--minutes", str(args.minutes), *flags])
        except SystemExit:
            sys.exit(f"error: --variant {name}: train.py refuses these flags (see the line above)")
    return variants


def bench_budget(args):
    splits = os.path.join(args.data_dir, "splits")
    if not all(os.path.isfile(os.path.join(splits, f"{part}.txt")) for part in ("train", "valid")):
        sys.exit(f"error: {args.data_dir} has no splits/train.txt and splits/valid.txt; budget compares on a fixed split")
    variants = budget_variants(args)
    work_dir = args.work_dir or tempfile.mkdtemp(prefix="bench_budget_")
    results = []
    for index, (name, flags) in enumerate(variants):
        model_dir = os.path.join(work_dir, f"{index}")
        command = [sys.executable, "train.py", "--data-dir", args.data_dir, "--minutes", str(args.minutes),
                   "--model-dir", model_dir, *flags]
        print(f"[{name}] {' '.join(command[1:])}", flush=True)
        finished = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if finished.returncode:
            last_line = (finished.stderr.strip().splitlines() or [f"exit code {finished.returncode}"])[-1]
            sys.exit(f"error: {name}: train.py failed: {last_line}")
        with open(os.path.join(model_dir, "training.json")) as f:
            training = json.load(f)
        rows = read_labelled_csv(os.path.join(model_dir, "val.csv"))
        model = ImageToWordModel(os.path.join(model_dir, "model.onnx"))
        summary = score(rows, predict_files(model, [path for path, _ in rows], BATCH_SIZE)[0])[0]
        results.append((name, summary, training))
        print(f"  CER {summary['corpus_cer']:.4f}, average CER {summary['average_cer']:.4f}, "
              f"word accuracy {summary['word_accuracy']:.4f}", flush=True)

    print(f"\n{args.minutes:g} minutes of training each on {args.data_dir} ({len(rows)} validation words, "
          f"{os.cpu_count()} CPU cores), greedy decoding of the ONNX export; models in {work_dir}")
    print("| run | CER | average CER | word accuracy | epochs | samples/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, summary, training in results:
        print(f"| {name} | {summary['corpus_cer']:.1%} | {summary['average_cer']:.1%} | {summary['word_accuracy']:.1%} | "
              f"{training['epochs']} | {training['samples'] / training['seconds']:.0f} |")


def single_word_counts(model, lines):
    """Each word image of `lines` read alone, as a user may upload one word: (how many read_page found
    as one word, read_page's edits, predict's edits, characters), and predict's texts in order."""
    words = [word for line in lines for word in line]
    predicted = model.predict_batch([image for image, _ in words])[0]
    single_words = single_edits = predict_edits = characters = 0
    for (image, text), prediction in zip(words, predicted):
        alone = read_page(model, image)
        single_words += len(alone["words"]) == 1
        single_edits += edit_distance(list(" ".join(alone["text"].split())), list(text))
        predict_edits += edit_distance(list(prediction), list(text))
        characters += len(text)
    return np.array([single_words, single_edits, predict_edits, characters]), predicted


def bench_pages(args):
    model = ImageToWordModel(args.model)
    split = "valid" if os.path.isfile(os.path.join(args.data_dir, "splits", "valid.txt")) else None
    sources = [page for page in dataset_lines(args.data_dir, split) if page]
    if not sources:
        sys.exit(f"error: {args.data_dir} has no words to compose pages from")
    rng = np.random.default_rng(args.seed)
    found = true = hits = page_edits = cropped_edits = characters = 0
    single = np.zeros(4, int)  # words read_page finds as one, its edits, predict's edits, characters
    seconds = 0.0
    for index in range(args.pages):
        source = sources[index % len(sources)]
        start = int(rng.integers(0, max(1, len(source) - args.lines + 1)))
        lines = [[(read_image(path), text) for path, text in line] for line in source[start:start + args.lines]]
        jpeg_quality = int(rng.integers(60, 95)) if index % 2 else None
        page, truth = compose_page(lines, rng, line_pitch=args.line_pitch, jpeg_quality=jpeg_quality, ruled=args.ruled)
        began = time.perf_counter()
        result = read_page(model, page)
        seconds += time.perf_counter() - began

        hits += matched_boxes([word["box"] for word in result["words"]], [word["box"] for word in truth])
        found, true = found + len(result["words"]), true + len(truth)
        truth_text = page_text([[text for _, text in line] for line in lines])
        read_text = page_text([[word["text"] for word in result["words"] if word["line"] == number]
                               for number in range(len(result["lines"]))])
        counts, cropped = single_word_counts(model, lines)
        single += counts
        ends = np.cumsum([0] + [len(line) for line in lines])
        cropped_lines = [cropped[begin:end] for begin, end in zip(ends[:-1], ends[1:])]
        page_edits += edit_distance(list(read_text), list(truth_text))
        cropped_edits += edit_distance(list(page_text(cropped_lines)), list(truth_text))
        characters += len(truth_text)
    precision, recall = hits / max(found, 1), hits / max(true, 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-9)
    print(f"Model {model.model_path}: {args.pages} pages of {args.lines} lines composed from {args.data_dir} "
          f"({split or 'all'} words), seed {args.seed}, {CORES} CPU cores")
    print(f"  word boxes at IoU >= 0.5: precision {precision:.3f}, recall {recall:.3f}, F1 {f1:.3f} "
          f"({hits} of {true} true words, {found} found)")
    print(f"  page CER {page_edits / characters:.2%} against {cropped_edits / characters:.2%} for the same words "
          f"cropped by hand ({100 * (page_edits - cropped_edits) / characters:+.2f} points)")
    print(f"  the same words one at a time (each word image as a page): read_page finds one word in "
          f"{single[0] / true:.1%}, CER {single[1] / single[3]:.2%} (predict {single[2] / single[3]:.2%})")
    print(f"  {args.pages / seconds:.2f} pages/s")


def bench_lines(args):
    model = ImageToWordModel(args.model, args.decoder, lexicon_path=args.lexicon)
    rows = read_labelled_csv(args.csv)
    paths = [path for path, _ in rows]
    for path in paths:  # every image once: a warm file cache, and a clear error for a bad one
        try:
            read_image(path)
        except UnreadableImage as e:
            raise ModelFileError(f"cannot read {path} ({e}); benchmark on readable images") from None
    seconds = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        predictions = predict_files(model, paths, BATCH_SIZE)[0]
        seconds = min(seconds, time.perf_counter() - start)
    summary = score(rows, predictions)[0]
    print(f"Model {model.model_path}: {len(rows)} images from {args.csv}, {args.decoder} decoding"
          f"{f', lexicon {args.lexicon}' if args.lexicon else ''}, {CORES} CPU cores")
    print(f"  CER {summary['corpus_cer']:.2%}, WER {summary['wer']:.2%}, read exactly right "
          f"{summary['word_accuracy']:.1%}; {len(rows) / seconds:.1f} images/s")


def true_lines(words):
    """gw_pages words -> {line number: (box of its words, their texts in order)}."""
    lines = {}
    for word in words:
        lines.setdefault(word["line"], []).append(word)
    return {number: (enclosing_box([w["box"] for w in line]), [w["text"] for w in line]) for number, line in sorted(lines.items())}


def f1(hits, found, true):
    precision, recall = hits / max(found, 1), hits / max(true, 1)
    return precision, recall, 2 * precision * recall / max(precision + recall, 1e-9)


def on_photo(boxes, homography):
    """[x, y, w, h] boxes on a page -> the smallest boxes holding their corners in its photo."""
    corners = np.float64([[[x, y], [x + w, y], [x + w, y + h], [x, y + h]] for x, y, w, h in boxes])
    photo = cv2.perspectiveTransform(corners.reshape(-1, 1, 2), np.asarray(homography, np.float64)).reshape(-1, 4, 2)
    return [[*low, *(high - low)] for low, high in zip(photo.min(axis=1), photo.max(axis=1))]


def gw_page_truth(args):
    """(name, image, {line: (box, its words' texts)}, word boxes) of each George Washington page asked for."""
    for page in args.page_numbers:
        with open(os.path.join(args.gw_pages, f"{page}.json"), encoding="utf-8") as f:
            words = json.load(f)["words"]
        yield str(page), read_image(os.path.join(args.gw_pages, "images", f"{page}.jpg")), true_lines(words), [w["box"] for w in words]


def export_page_truth(args):
    """The same for the pages of an export's validation documents, as train.py --data-dir splits it
    (split_by_document, --split-seed): writers a model trained on the rest never saw. No word boxes."""
    pages = {}
    for path in xml_files(args.alto_dir):
        try:
            pages[path] = read_xml_page(path)
        except XmlError as e:
            if e.reason != "not ALTO or PAGE XML":  # METS and the like are skipped, as train.py does
                sys.exit(f"error: {path}: {e}; benchmark on a folder of ALTO or PAGE XML files")
    rows = [(path, line["text"], document_of(os.path.relpath(path, args.alto_dir)))
            for path, page in pages.items() for line in page["lines"] if line["text"]]
    if not rows:
        sys.exit(f"error: {args.alto_dir} holds no ALTO or PAGE XML file with transcribed lines; give an export's folder")
    for path in sorted({path for path, _ in split_by_document(rows, args.split_seed)["val"]}):
        page = pages[path]
        try:
            image, x_scale, y_scale, _ = page_image(find_page_image(path, page["image_name"]), page["size"])
        except XmlError as e:
            sys.exit(f"error: {path}: {e}")
        lines = {n: ([line["box"][0] * x_scale, line["box"][1] * y_scale, line["box"][2] * x_scale, line["box"][3] * y_scale],
                     line["text"].split()) for n, line in enumerate(page["lines"]) if line["text"] and line["box"]}
        yield os.path.relpath(path, args.alto_dir), image, lines, None


def bench_real_pages(args):
    if args.alto_dir and args.gw_lines:
        sys.exit("error: --gw-lines are George Washington lines; give them with --gw-pages, not --alto-dir")
    model = ImageToWordModel(args.model)
    rng = np.random.default_rng(args.seed)
    counts = np.zeros(7, int)  # lines matched, found, true; words matched, found, true; page characters
    page_edits = cropped_edits = 0
    seconds = 0.0
    names = []
    for name, image, lines, word_boxes in (export_page_truth(args) if args.alto_dir else gw_page_truth(args)):
        names.append(name)
        line_boxes = [box for box, _ in lines.values()]
        if args.photographed:  # on a sheet of its paper (a scan's edges are scanner borders), photographed
            image, moved = on_paper(image, [{"box": box} for box in line_boxes + (word_boxes or [])], PAPER_MARGIN)
            image, homography = photograph_page(image, rng)
            moved = on_photo([item["box"] for item in moved], homography)
            line_boxes, word_boxes = moved[:len(line_boxes)], word_boxes and moved[len(line_boxes):]
        began = time.perf_counter()
        result = read_page(model, image)
        seconds += time.perf_counter() - began
        counts[:3] += [matched_boxes([line["box"] for line in result["lines"]], line_boxes), len(result["lines"]), len(lines)]
        if word_boxes:
            counts[3:6] += [matched_boxes([word["box"] for word in result["words"]], word_boxes), len(result["words"]), len(word_boxes)]
        truth_text = page_text([texts for _, texts in lines.values()])
        counts[6] += len(truth_text)
        edits = edit_distance(list(page_text([line["text"].split() for line in result["lines"]])), list(truth_text))
        page_edits += edits
        print(f"  {name}: {len(result['lines'])} lines found, {len(lines)} true, page CER {edits / max(len(truth_text), 1):.2%}")
        if args.gw_lines:
            paths = [os.path.join(args.gw_lines, "images", f"{name}-{number:02d}.jpg") for number in lines]
            cropped = predict_files(model, paths, BATCH_SIZE)[0]
            cropped_edits += edit_distance(list(page_text([(text or "").split() for text in cropped])), list(truth_text))
    source = f"{len(names)} validation pages of {args.alto_dir}" if args.alto_dir else f"pages {names[0]}-{names[-1]} of {args.gw_pages}"
    print(f"Model {model.model_path}: {source}{f', photographed (seed {args.seed})' if args.photographed else ''}, {CORES} CPU cores")
    print("  lines found at IoU >= 0.5: precision {:.3f}, recall {:.3f}, F1 {:.3f}".format(*f1(*counts[:3])),
          f"({counts[0]} of {counts[2]} true lines, {counts[1]} found)")
    if counts[5]:
        print("  word boxes at IoU >= 0.5: precision {:.3f}, recall {:.3f}, F1 {:.3f}".format(*f1(*counts[3:6])),
              f"({counts[3]} of {counts[5]} true words, {counts[4]} found)")
    cropped = f" against {cropped_edits / counts[6]:.2%} for the same lines cropped by hand " \
              f"({100 * (page_edits - cropped_edits) / counts[6]:+.2f} points)" if args.gw_lines else ""
    print(f"  page CER {page_edits / counts[6]:.2%}{cropped}")
    print(f"  {len(names) / seconds:.2f} pages/s")


def bench_curve(args):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorflow import make_ndarray
    starts = sorted(glob.glob(os.path.join(args.model, "logs", "train", "events.out.tfevents.*")))
    if not starts:
        raise ModelFileError(f"{args.model} has no logs/train/ of train.py; pass a model folder train.py wrote")
    began = int(os.path.basename(starts[0]).split(".")[3])  # the file's name holds the time it was opened
    validation = EventAccumulator(os.path.join(args.model, "logs", "validation"), size_guidance={"tensors": 0})
    validation.Reload()
    if "epoch_CER" not in validation.Tags()["tensors"]:
        raise ModelFileError(f"{args.model}/logs/validation has no epoch_CER yet: no epoch has finished")
    print(f"{args.model}: validation CER (average over images) after each epoch")
    print("| epoch | minutes | validation CER |\n| ---: | ---: | ---: |")
    for event in validation.Tensors("epoch_CER"):
        print(f"| {event.step + 1} | {(event.wall_time - began) / 60:.1f} | {float(make_ndarray(event.tensor_proto)):.2%} |")


def gw_pages(folder, pages):
    """[(image path, true line boxes), ...] of the George Washington pages `pages` in `folder`."""
    found = []
    for page in pages:
        json_path, image_path = os.path.join(folder, f"{page}.json"), os.path.join(folder, "images", f"{page}.jpg")
        if not (os.path.isfile(json_path) and os.path.isfile(image_path)):
            sys.exit(f"error: page {page}: {folder} needs {page}.json and images/{page}.jpg")
        with open(json_path, encoding="utf-8") as f:
            words = json.load(f)["words"]
        lines = {}
        for word in words:
            x, y, w, h = word["box"]
            left, top, right, bottom = lines.get(word["line"], (x, y, x + w, y + h))
            lines[word["line"]] = (min(left, x), min(top, y), max(right, x + w), max(bottom, y + h))
        found.append((image_path, [[left, top, right - left, bottom - top] for left, top, right, bottom in lines.values()]))
    return found


def alto_line_boxes(xml_path, image_shape):
    """The boxes of an ALTO file's transcribed TextLines, in pixels of its image (scaled where the
    Page's WIDTH and HEIGHT differ from the image's size)."""
    try:
        root = ElementTree.parse(xml_path).getroot()
    except (ElementTree.ParseError, OSError) as e:
        sys.exit(f"error: {xml_path} is not readable XML ({e}); benchmark on ALTO files")
    namespace = root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    page = root.find(f".//{namespace}Page")
    if page is None or not page.get("WIDTH") or not page.get("HEIGHT"):
        sys.exit(f"error: {xml_path} has no Page with WIDTH and HEIGHT; benchmark on ALTO files")
    scale_x, scale_y = image_shape[1] / float(page.get("WIDTH")), image_shape[0] / float(page.get("HEIGHT"))
    boxes = []
    for line in root.iter(f"{namespace}TextLine"):
        if " ".join(string.get("CONTENT", "") for string in line.iter(f"{namespace}String")).strip():
            x, y, w, h = (float(line.get(name, 0)) for name in ("HPOS", "VPOS", "WIDTH", "HEIGHT"))
            boxes.append([x * scale_x, y * scale_y, w * scale_x, h * scale_y])
    return boxes


def alto_pages(folder, part):
    """[(image path, true line boxes), ...] of the ALTO pages of `part`: every 5th document (the
    page names' part before the last '-') in sorted order is the measured part, the rest develop."""
    xml_paths = sorted(glob.glob(os.path.join(folder, "*.xml")))
    documents = sorted({os.path.basename(path).rsplit("-", 1)[0] for path in xml_paths})
    measured = set(documents[::5])
    pages = []
    for xml_path in xml_paths:
        if (os.path.basename(xml_path).rsplit("-", 1)[0] in measured) == (part == "measured"):
            image_path = xml_path[:-len(".xml")] + ".jpg"
            try:
                shape = read_image(image_path).shape
            except UnreadableImage as e:
                sys.exit(f"error: cannot read {image_path} ({e}); every ALTO file needs its JPEG beside it")
            pages.append((image_path, alto_line_boxes(xml_path, shape)))
    if not pages:
        sys.exit(f"error: {folder} has no ALTO files (*.xml beside *.jpg)")
    return pages


def page_range(text):
    """'300-304' -> [300, ..., 304]; '300' -> [300]."""
    first, _, last = text.partition("-")
    try:
        pages = list(range(int(first), int(last or first) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: write pages as FIRST-LAST, e.g. 300-304") from None
    if not pages:
        raise argparse.ArgumentTypeError(f"{text!r}: the first page comes after the last")
    return pages


def line_finder(name):
    """The function find-lines measures: "page" (what read_page uses), "classical" or "network"."""
    if name == "classical":
        return find_text_lines
    if name == "page":
        return find_page_lines
    session = bundled_line_finder()
    if session is None:
        sys.exit(f"error: {BUNDLED} is missing; train it with python -m htr.pages.train_line_finder")
    return lambda image: find_lines_with_model(session, image)


def bench_find_lines(args):
    if args.gw_pages:
        numbers = args.page_numbers
        pages, source = gw_pages(args.gw_pages, numbers), f"George Washington pages {numbers[0]}-{numbers[-1]}"
    else:
        pages, source = alto_pages(args.alto_dir, args.part), f"{args.alto_dir} ({args.part} part)"
    finder = line_finder(args.finder)
    found = true = hits = 0
    seconds = cpu_seconds = 0.0
    for image_path, true_boxes in pages:
        image = read_image(image_path)
        began, cpu_began = time.perf_counter(), time.process_time()
        lines = finder(image)
        seconds, cpu_seconds = seconds + time.perf_counter() - began, cpu_seconds + time.process_time() - cpu_began
        hits += matched_boxes([line["box"] for line in lines], true_boxes)
        found, true = found + len(lines), true + len(true_boxes)
    precision, recall = hits / max(found, 1), hits / max(true, 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-9)
    print(f"{args.finder} line finder on {len(pages)} pages: {source}, {CORES} CPU cores")
    print(f"  line boxes at IoU >= 0.5: recall {recall:.3f}, precision {precision:.3f}, F1 {f1:.3f} "
          f"({found} lines found, {true} true, {hits} matched)")
    print(f"  {seconds / len(pages):.3f} s a page ({cpu_seconds / len(pages):.3f} s of CPU time: other programs on the cores slow the first, not this)")


def boxes_on_flat(boxes, homography, info):
    """[x, y, w, h] boxes on the scan -> the smallest boxes holding their corners once taken into the
    photo by `homography` and from there onto the flattened page (the inverse of info's homography)."""
    corners = np.float64([[[x, y], [x + w, y], [x + w, y + h], [x, y + h]] for x, y, w, h in boxes]) - 0.5
    to_flat = np.linalg.inv(np.asarray(info["homography"])) @ homography
    flat = cv2.perspectiveTransform(corners.reshape(-1, 1, 2), to_flat).reshape(-1, 4, 2) + 0.5
    return [[*low, *(high - low)] for low, high in zip(flat.min(axis=1), flat.max(axis=1))]


def on_paper(scan, truth, margin):
    """The scan on a sheet `margin` (a share of its long side) larger all round, of its own paper's
    colour, and the truth moved with it: a scan's edges are often dark scanner borders, a sheet's are paper."""
    pad = int(round(margin * max(scan.shape[:2])))
    paper = np.median(scan[scan.mean(axis=2) > np.percentile(scan, 60)], axis=0)
    sheet = np.empty((scan.shape[0] + 2 * pad, scan.shape[1] + 2 * pad, 3), np.uint8)
    sheet[:] = paper.astype(np.uint8)
    sheet[pad:pad + scan.shape[0], pad:pad + scan.shape[1]] = scan
    return sheet, [{**word, "box": [word["box"][0] + pad, word["box"][1] + pad, *word["box"][2:]]} for word in truth]


def flatten_page(scan, truth, rng):
    """One page photographed and flattened -> (flattened?, corner errors in pixels, the sheet's
    diagonal in the photo, the word boxes' IoUs, seconds of flatten_photo)."""
    photo, homography = photograph_page(scan, rng)
    began = time.perf_counter()
    _, info = flatten_photo(photo)
    seconds = time.perf_counter() - began
    height, width = scan.shape[:2]
    true_corners = cv2.perspectiveTransform(np.float64([[[0, 0], [width, 0], [width, height], [0, height]]]) - 0.5,
                                            homography)[0] + 0.5
    diagonal = float(np.linalg.norm(true_corners[2] - true_corners[0]))
    if not info["flattened"]:
        return False, [], diagonal, [0.0] * len(truth), seconds
    errors = np.linalg.norm(np.asarray(info["corners"]) - true_corners, axis=1)
    scale = np.array(info["size"] * 2) / [width, height, width, height]
    boxes = [word["box"] for word in truth]
    ious = [box_iou(found, list(np.asarray(box) * scale)) for found, box in zip(boxes_on_flat(boxes, homography, info), boxes)]
    return True, list(errors), diagonal, ious, seconds


def bench_flatten(args):
    pages = args.page_numbers
    rng = np.random.default_rng(args.seed)
    print(f"flatten_photo on photographed {args.gw_pages} pages {pages[0]}-{pages[-1]}, seed {args.seed}, {CORES} CPU cores")
    flattened, errors, relative, ious, seconds = 0, [], [], [], []
    for page in pages:
        try:
            scan = read_image(os.path.join(args.gw_pages, "images", f"{page}.jpg"))
            with open(os.path.join(args.gw_pages, f"{page}.json"), encoding="utf-8") as f:
                truth = json.load(f)["words"]
        except (OSError, UnreadableImage, ValueError, KeyError) as e:
            sys.exit(f"error: page {page} of {args.gw_pages}: {e} (a gw_pages folder has images/<page>.jpg and <page>.json)")
        if args.paper_margin:
            scan, truth = on_paper(scan, truth, args.paper_margin)
        done, page_errors, diagonal, page_ious, page_seconds = flatten_page(scan, truth, rng)
        flattened += done
        errors += page_errors
        relative += [error / diagonal for error in page_errors]
        ious += page_ious
        seconds.append(page_seconds)
        corners = f"corner error mean {np.mean(page_errors):.1f} px, max {np.max(page_errors):.1f} px" if done else "NOT flattened"
        print(f"  page {page}: {corners}; word boxes mean IoU {np.mean(page_ious):.3f}; {page_seconds:.3f} s")
    print(f"  all: {flattened} of {len(pages)} flattened; corner error mean {np.mean(errors or [np.nan]):.1f} px "
          f"({np.mean(relative or [np.nan]):.2%} of the sheet's diagonal), max {np.max(errors or [np.nan]):.1f} px; "
          f"word boxes mean IoU {np.mean(ious):.3f}, {np.mean(np.array(ious) >= 0.5):.1%} at IoU >= 0.5; "
          f"{np.mean(seconds):.3f} s a page")


def add_real_page_commands(subcommands):
    """The subcommands on real page scans: real-pages, find-lines, flatten."""
    real = subcommands.add_parser("real-pages", help="read_page on real scans: lines and word boxes found, page CER, pages/s")
    real.add_argument("--model", required=True, help="a .onnx file or a model folder")
    pages = real.add_mutually_exclusive_group(required=True)
    pages.add_argument("--gw-pages", help="page scans with truth: images/<page>.jpg beside <page>.json")
    pages.add_argument("--alto-dir", metavar="DIR", help="an export (ALTO or PAGE XML beside the images): the pages "
                       "of the documents train.py --data-dir DIR validates on (--split-seed)")
    real.add_argument("--pages", dest="page_numbers", type=page_range, default=page_range("300-304"), metavar="FIRST-LAST",
                      help="with --gw-pages: which pages (default 300-304)")
    real.add_argument("--gw-lines", help="with --gw-pages: the same pages' lines cropped by hand, images/<page>-<line>.jpg, to compare with")
    real.add_argument("--photographed", action="store_true", help="read phone photos of the pages (htr.pages.desk), not the scans")
    real.add_argument("--seed", type=int, default=0, help="of the photos (default %(default)s)")
    real.add_argument("--split-seed", type=int, default=42, metavar="SEED",
                      help="with --alto-dir: the --seed the model's train.py run split by (default %(default)s)")
    real.set_defaults(run=bench_real_pages)
    find = subcommands.add_parser("find-lines", help="the line finder on real scans: line-box recall, precision, F1, s/page")
    source = find.add_mutually_exclusive_group(required=True)
    source.add_argument("--gw-pages", metavar="DIR", help="George Washington pages: DIR/<page>.json and DIR/images/<page>.jpg")
    source.add_argument("--alto-dir", metavar="DIR", help="ALTO v4 files (*.xml) beside their scans (*.jpg)")
    find.add_argument("--pages", dest="page_numbers", type=page_range, default=page_range("300-304"), metavar="FIRST-LAST",
                      help="with --gw-pages: which pages (default 300-304)")
    find.add_argument("--part", choices=["measured", "develop"], default="measured",
                      help="with --alto-dir: every 5th document (measured, the default) or the others")
    find.add_argument("--finder", choices=["page", "classical", "network"], default="page",
                      help="read_page's (default), the classical one alone or the trained network alone")
    find.set_defaults(run=bench_find_lines)
    flatten = subcommands.add_parser("flatten", help="flatten_photo on photographed page scans: corner error, word-box IoU, s/page")
    flatten.add_argument("--gw-pages", required=True, metavar="DIR", help="page scans: images/<page>.jpg and <page>.json (words with box)")
    flatten.add_argument("--pages", dest="page_numbers", type=page_range, default=page_range("300-304"), metavar="FIRST-LAST",
                         help="which pages (default 300-304)")
    flatten.add_argument("--seed", type=int, default=0, help="of the photographs (default %(default)s)")
    flatten.add_argument("--paper-margin", type=float, default=PAPER_MARGIN, metavar="SHARE",
                         help="photograph each scan on paper this share of its long side larger all round "
                              "(default %(default)s; 0: the scans as they are, dark scanner borders and all)")
    flatten.set_defaults(run=bench_flatten)


def main(argv=None):
    parser = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    subcommands = parser.add_subparsers(dest="subcommand", required=True)
    photos = subcommands.add_parser("photos", help="CER on a labelled CSV's scans and on photo-like copies of them")
    photos.add_argument("--model", required=True, help="a .onnx file or a model folder")
    photos.add_argument("--csv", help="labelled images, columns image_path,label (default: the model folder's val.csv)")
    photos.add_argument("--images", type=int, help="only the CSV's first this many images (default: all)")
    photos.add_argument("--seed", type=int, default=0, help="of the photo-like copies (default %(default)s)")
    photos.set_defaults(run=bench_photos)
    budget = subcommands.add_parser("budget", help="CER after M minutes of training: tutorial preset vs defaults")
    budget.add_argument("--minutes", type=float, required=True, help="training budget of each run")
    budget.add_argument("--data-dir", required=True, help="a folder in the IAM words layout with splits/train.txt, valid.txt")
    budget.add_argument("--variant", action="append", default=[], metavar='"NAME: FLAGS"',
                        help='also train the defaults with these train.py flags, e.g. "tutorial model: --architecture tutorial"')
    budget.add_argument("--work-dir", help="where to keep the trained models (default: a new temporary folder)")
    budget.set_defaults(run=bench_budget)
    pages = subcommands.add_parser("pages", help="read_page on composed pages: word-box F1, page CER vs cropped words, pages/s")
    pages.add_argument("--model", required=True, help="a .onnx file or a model folder")
    pages.add_argument("--data-dir", required=True, help="word images in the IAM words layout (its validation split if it has splits/)")
    pages.add_argument("--pages", type=int, default=20, help="how many pages to compose and read (default %(default)s)")
    pages.add_argument("--lines", type=int, default=8, help="source lines per page (default %(default)s)")
    pages.add_argument("--seed", type=int, default=0, help="seed of the page composer (default %(default)s)")
    pages.add_argument("--line-pitch", type=float, metavar="UNITS",
                       help="lines this many word heights apart (default: 0.8-0.95, some lines touch; 1.3: none do)")
    pages.add_argument("--ruled", action="store_true", help="on ruled paper: a rule under each line, a margin rule")
    pages.set_defaults(run=bench_pages)
    lines = subcommands.add_parser("lines", help="a labelled CSV of lines (or words): CER, WER, exactly right, images/s")
    lines.add_argument("--model", required=True, help="a .onnx file or a model folder")
    lines.add_argument("--csv", required=True, help="labelled images, columns image_path,label")
    lines.add_argument("--decoder", choices=["greedy", "beam"], default="greedy", help="(default %(default)s)")
    lines.add_argument("--lexicon", metavar="FILE", help="one word per line, applied word by word within a line")
    lines.set_defaults(run=bench_lines)
    add_real_page_commands(subcommands)
    curve = subcommands.add_parser("curve", help="validation CER against minutes of training, from a model folder's logs")
    curve.add_argument("--model", required=True, help="a model folder train.py wrote")
    curve.set_defaults(run=bench_curve)
    args = parser.parse_args(argv)
    if getattr(args, "minutes", 1) <= 0:
        parser.error("--minutes must be above 0")
    if args.subcommand == "pages" and (args.pages < 1 or args.lines < 1):
        parser.error("--pages and --lines must be at least 1")
    if (getattr(args, "line_pitch", None) or 1) <= 0:
        parser.error("--line-pitch must be above 0")
    try:
        args.run(args)
    except (ModelFileError, DatasetError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
