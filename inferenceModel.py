"""Read handwritten words with an exported ONNX model, and score it.

    python inferenceModel.py                            # newest model under Models/, scored on its val.csv
    python inferenceModel.py --model DIR --csv FILE     # any model (.onnx or its folder), any labelled CSV
    python inferenceModel.py --model DIR a.png words/   # unlabelled images: prints path<TAB>text<TAB>confidence
    python inferenceModel.py --decoder beam --lexicon Models/.../lexicon.txt   # slower, more accurate
    python inferenceModel.py --quantize --preview preview.png                  # int8 model; see the results
    python inferenceModel.py --page scan.jpg --output-dir pages/ --preview     # a whole line or page: words, lines, text
    python inferenceModel.py --page scan.jpg --output-dir pages/ --format page # ... as PAGE XML (or alto) for other tools

The .onnx file is all it needs: train.py stores the vocabulary and input size in its metadata.
The script reads top to bottom: parse the flags, load the model, read the images (files, a CSV,
or --page pages), score the readings, write the outputs. An image's way to a word is in
htr.recognizer (prepared by htr.preprocess, decoded by htr.decoding); a page's in htr.pages.
"""
import argparse
import os
import sys

import cv2
import numpy as np

from htr.data.labels_csv import DatasetError, read_labelled_csv
from htr.files import write_file
from htr.images import IMAGE_EXTENSIONS, UnreadableImage, list_images, read_image
from htr.pages.output import PAGE_FORMATS, draw_page, page_document
from htr.preview import write_preview
from htr.quantize import quantize_model
from htr.recognizer import ImageToWordModel, ModelFileError, newest_model_dir, predict_files
from htr.scoring import confidence_auroc, score, write_predictions

PREVIEW_IMAGES = 24  # --preview shows the first this many images


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("images", nargs="*",
                        help="image files or folders to read (no labels: prints path<TAB>text<TAB>confidence)")
    parser.add_argument("--model", help="a .onnx file or a model folder (default: the newest model.onnx under Models/)")
    parser.add_argument("--csv", help="labelled images to score, columns image_path,label (default: the model folder's val.csv)")
    parser.add_argument("--output", help="write image_path,label,prediction,confidence,cer for every scored row to this CSV")
    parser.add_argument("--batch-size", type=int, default=64, help="images per model call (default %(default)s)")
    parser.add_argument("--decoder", choices=["greedy", "beam"], default="greedy",
                        help="greedy: best character per time step (default); beam: CTC prefix beam search")
    parser.add_argument("--beam-width", type=int, default=10, help="texts the beam search keeps (default %(default)s)")
    parser.add_argument("--lexicon", metavar="FILE",
                        help="one word per line (train.py writes the training words to the model folder's lexicon.txt): "
                             "read the most likely of these words, unless the free reading is far more likely")
    parser.add_argument("--quantize", action="store_true",
                        help="make (or reuse) model.int8.onnx beside the model, calibrated on the folder's train.csv, and use it")
    parser.add_argument("--preview", metavar="FILE.png", nargs="?", const="",
                        help=f"draw the first {PREVIEW_IMAGES} images with label and prediction; with --page (no FILE): "
                             "draw each page's words and readings to DIR/NAME.preview.png")
    parser.add_argument("--words", action="store_true",
                        help="with images: also print each word of a reading, its confidence and its box x,y,w,h "
                             "in the image (where the CTC alignment puts it; for lines read by a line model)")
    parser.add_argument("--page", nargs="+", metavar="IMAGE",
                        help="read whole lines or pages: find the words, read them, write DIR/NAME.json (or .xml, see --format) "
                             "and print the text")
    parser.add_argument("--output-dir", metavar="DIR", help="with --page: where the .json (and .preview.png) files go")
    parser.add_argument("--format", choices=list(PAGE_FORMATS), default="json",
                        help="with --page: write NAME.json (default), or NAME.xml in ALTO 4.4 (alto) or PAGE XML 2019-07-15 (page), "
                             "the formats of archives and transcription tools")
    args = parser.parse_args(argv)
    if args.page and not args.output_dir:
        parser.error("--page needs --output-dir DIR, the folder for the NAME.json results")
    if args.format != "json" and not args.page:
        parser.error(f"--format {args.format} is for --page: the XML formats describe whole lines or pages")
    if args.preview == "" and not args.page:
        parser.error("--preview needs a FILE.png to write (only with --page does it name the files itself)")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.beam_width < 1:
        parser.error(f"--beam-width must be at least 1, got {args.beam_width}")
    return args


def load_model(args):
    """The model --model names (else the newest under Models/), its int8 copy with --quantize."""
    model_path = args.model or newest_model_dir()
    if args.quantize:
        model_path = quantize_model(model_path)
    return ImageToWordModel(model_path, args.decoder, args.beam_width, args.lexicon)


def read_rows(args, model):
    """(image path, label) rows to read: the images given (label None), else a labelled CSV."""
    if args.images:
        rows = [(path, None) for path in list_images(args.images)]
        if not rows:
            raise ModelFileError(f"no {'/'.join(IMAGE_EXTENSIONS)} files in {' '.join(args.images)}")
        return rows
    csv_path = args.csv or os.path.join(os.path.dirname(model.model_path), "val.csv")
    if not args.csv and not os.path.isfile(csv_path):
        raise ModelFileError(f"{os.path.dirname(model.model_path)} has no val.csv to score: pass image files, --csv FILE or --page IMAGE")
    rows = read_labelled_csv(csv_path)
    print(f"Model {model.model_path}, {len(rows)} labelled images from {csv_path}")
    return rows


def read_pages(model, paths, output_dir, preview, page_format):
    """--page: each image's read_page result to output_dir/NAME.json ("image": its path) or, as ALTO
    or PAGE XML, NAME.xml; its text to stdout and, with preview, its picture to output_dir/NAME.preview.png.
    An image that cannot be read is reported in one line and the others go on; the exit code says if any failed."""
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as e:
        sys.exit(f"error: cannot create --output-dir {output_dir}: {e.strerror or e}")
    failed = 0
    for path in paths:
        try:
            image = read_image(path)
            result = {"image": path, **model.read_page(image)}
        except UnreadableImage as e:
            print(f"skipped {path}: {e}", file=sys.stderr)
            failed += 1
            continue
        stem = os.path.join(output_dir, os.path.splitext(os.path.basename(path))[0])
        target = stem + PAGE_FORMATS[page_format]
        try:
            write_file(target, page_document(result, page_format, image.shape, output_dir))
            if preview:
                write_file(stem + ".preview.png", cv2.imencode(".png", draw_page(image, result))[1].tobytes())
        except OSError as e:
            sys.exit(f"error: cannot write {target}: {e.strerror or e}; check that {output_dir} is writable")
        print(f"== {path}: {len(result['words'])} words in {len(result['lines'])} lines -> {target}")
        print(result["text"] if result["words"] else "(no writing found)")
    if failed:
        sys.exit(f"error: {failed} of {len(paths)} images could not be read (listed above)")


def print_readings(rows, predictions, prediction_confidences, model=None):
    """path<TAB>text<TAB>confidence per image; with a model (--words), then a line per word:
    <TAB>word<TAB>confidence<TAB>x,y,w,h (ImageToWordModel.read_line)."""
    for (path, _), text, confidence in zip(rows, predictions, prediction_confidences):
        if text is None:
            continue
        print(f"{path}\t{text}\t{confidence:.4f}")
        for word in model.read_line(read_image(path))["words"] if model else []:
            print(f"\t{word['text']}\t{word['confidence']:.4f}\t{','.join(map(str, word['box']))}")


def print_scores(rows, predictions, prediction_confidences, vocab):
    """Prints the CERs, the word accuracy and the confidence AUROC; returns each row's CER."""
    unknown = sorted(set("".join(label for _, label in rows)) - set(vocab))
    if unknown:
        n_labels = sum(not set(label) <= set(vocab) for _, label in rows)
        print(f"note: {n_labels} labels use characters the model cannot write ({''.join(unknown)}); they count as errors")
    summary, per_word_cer = score(rows, predictions)
    print(f"Average CER: {summary['average_cer']:.4f}")
    print(f"Corpus CER: {summary['corpus_cer']:.4f}")
    print(f"Word accuracy: {summary['word_accuracy']:.4f} ({summary['words']} words)")
    print(f"WER: {summary['wer']:.4f} (word edits / words: the words of a line, split at spaces)")
    auroc = confidence_auroc(rows, predictions, prediction_confidences)
    print(f"Confidence AUROC: {auroc:.4f} (how often a correct reading has a higher confidence than a wrong one)"
          if not np.isnan(auroc) else "Confidence AUROC: none (it needs some readings right and some wrong)")
    return per_word_cer


def write_outputs(args, rows, predictions, prediction_confidences, per_word_cer):
    """--output's CSV of the scored rows (labelled images only) and --preview's picture of the first images."""
    target = args.output
    try:
        if args.output and per_word_cer is not None:
            write_predictions(rows, predictions, prediction_confidences, per_word_cer, args.output)
        if args.preview:
            target = args.preview
            shown = [(path, label, text) for (path, label), text in zip(rows, predictions) if text is not None]
            shown = shown[:PREVIEW_IMAGES]
            write_preview(args.preview, [read_image(path) for path, _, _ in shown], [label for _, label, _ in shown],
                          [text for _, _, text in shown])
            print(f"Preview: {args.preview}", file=sys.stderr)
    except OSError as e:
        sys.exit(f"error: cannot write {target}: {e.strerror or e}; check that its folder exists and is writable")


def main(argv=None):
    args = parse_args(argv)
    try:
        model = load_model(args)
        if args.page:
            return read_pages(model, args.page, args.output_dir, args.preview is not None, args.format)
        rows = read_rows(args, model)
    except (ModelFileError, DatasetError) as e:
        sys.exit(f"error: {e}")

    predictions, prediction_confidences = predict_files(model, [path for path, _ in rows], args.batch_size,
                                                        progress=not args.images)
    per_word_cer = None  # unlabelled images: nothing to score
    if args.images:
        print_readings(rows, predictions, prediction_confidences, model if args.words else None)
    else:
        per_word_cer = print_scores(rows, predictions, prediction_confidences, model.vocab)
    write_outputs(args, rows, predictions, prediction_confidences, per_word_cer)

    failed = sum(text is None for text in predictions)
    if failed:
        sys.exit(f"error: {failed} of {len(rows)} images could not be read (listed above)")


if __name__ == "__main__":
    main()
