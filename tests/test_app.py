"""app.py for real: the server started as a user starts it, on 127.0.0.1 and a free port, asked over
HTTP (words, a page, every kind of bad upload, several requests at once), and its page driven in a
headless Chromium (drawing with mouse and finger, choosing and dropping files)."""
import base64
import contextlib
import glob
import http.client
import json
import os
import re
import select
import shutil
import struct
import subprocess
import sys
import urllib.error
import urllib.request
import zlib
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from conftest import REPO, run_script
from test_xml_output import ALTO, PAGE, alto_lines, page_lines, valid

pytestmark = pytest.mark.slow  # end to end: every test talks to app.py serving a model

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@contextlib.contextmanager
def running_app(model_dir, tmp_path):
    """python app.py --model DIR --port 0 (model_dir None: no --model, run in tmp_path, which has no
    Models/), until the block ends: yields its URL, read from its first line."""
    log = open(tmp_path / "app.log", "w+")
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    model = ["--model", model_dir] if model_dir else []
    process = subprocess.Popen([sys.executable, os.path.join(REPO, "app.py"), *model, "--port", "0"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    try:
        ready = select.select([process.stdout], [], [], 120)[0]
        match = re.search(r"http://127\.0\.0\.1:\d+/", process.stdout.readline() if ready else "")
        log.seek(0)
        assert match, f"app.py did not start: {log.read()[-2000:]}"
        yield match.group(0)
        assert process.poll() is None, "the server stopped"
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def app_url(trained_model_dir, tmp_path_factory):
    with running_app(trained_model_dir, tmp_path_factory.mktemp("app")) as url:
        yield url


@pytest.fixture(scope="module")
def random_app_url(random_model_dir, tmp_path_factory):
    with running_app(random_model_dir, tmp_path_factory.mktemp("random_app")) as url:
        yield url


def request(url, method="GET", body=None, content_type="image/png"):
    """(status, parsed JSON answer) of one request."""
    headers = {"Content-Type": content_type} if body is not None else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, body, headers, method=method), timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def read(app_url, image_bytes, decoder=None):
    return request(app_url + "api/read" + (f"?decoder={decoder}" if decoder else ""), "POST", image_bytes)


def png(image):
    return cv2.imencode(".png", image)[1].tobytes()


def js_round(x):
    """JavaScript's Math.round, as the page shows percentages: halves go up (Python's round goes to even)."""
    return int(np.floor(x + 0.5))


def demo_word_paths(demo_dir):
    return sorted(glob.glob(os.path.join(demo_dir, "words", "**", "*.png"), recursive=True))


def demo_page(demo_dir, rows=2, words_per_row=3):
    """Demo words pasted on white paper in rows, with gaps between words and lines, like a written page."""
    images = [cv2.imread(path) for path in demo_word_paths(demo_dir)[:rows * words_per_row]]
    height = max(image.shape[0] for image in images)
    lines = []
    for row in range(rows):
        line = [np.full((height, 40, 3), 255, np.uint8)]
        for image in images[row * words_per_row:(row + 1) * words_per_row]:
            pad = np.full((height - image.shape[0], image.shape[1], 3), 255, np.uint8)
            line += [np.vstack([image, pad]), np.full((height, 50, 3), 255, np.uint8)]
        lines.append(np.hstack(line))
    width = max(line.shape[1] for line in lines)
    page = [np.full((30, width, 3), 255, np.uint8)]
    for line in lines:
        page += [np.hstack([line, np.full((height, width - line.shape[1], 3), 255, np.uint8)]),
                 np.full((height, width, 3), 255, np.uint8)]
    return np.vstack(page)


def check_page_shape(answer, image):
    height, width = image.shape[:2]
    assert set(answer) >= {"words", "lines", "text", "decoder"}
    for word in answer["words"]:
        x, y, w, h = word["box"]
        assert 0 <= x and 0 <= y and w > 0 and h > 0 and x + w <= width and y + h <= height
        assert 0 <= word["confidence"] <= 1 and 0 <= word["line"] < len(answer["lines"])
    lines = ["" for _ in answer["lines"]]
    for word in answer["words"]:  # a line's text: its words that read as something, left to right
        if word["text"]:
            lines[word["line"]] = (lines[word["line"]] + " " + word["text"]).strip()
    assert [line["text"] for line in answer["lines"]] == lines
    assert answer["text"] == "\n".join(lines)


def test_the_page_and_its_files_are_served(app_url):
    with urllib.request.urlopen(app_url) as response:
        assert response.headers["Content-Type"].startswith("text/html") and b'<canvas id="pad"' in response.read()
    for path, kind in [("app.js", "text/javascript"), ("style.css", "text/css")]:
        with urllib.request.urlopen(app_url + path) as response:
            assert response.headers["Content-Type"].startswith(kind) and len(response.read()) > 1000
    status, info = request(app_url + "api/info")
    assert status == 200 and info["decoders"] == ["greedy", "beam", "lexicon"]  # train.py wrote lexicon.txt
    assert info["model"].endswith("model.onnx") and info["max_upload_bytes"] == 20 * 2**20


@pytest.mark.parametrize("decoder", ["greedy", "beam", "lexicon"])
def test_a_word_reads_as_the_model_reads_it(random_app_url, random_model_dir, demo_dir, decoder):
    from htr.images import read_image
    from htr.recognizer import ImageToWordModel
    lexicon = os.path.join(random_model_dir, "lexicon.txt") if decoder == "lexicon" else None
    model = ImageToWordModel(random_model_dir, "beam" if decoder == "beam" else "greedy", lexicon_path=lexicon)
    for path in demo_word_paths(demo_dir)[:3]:
        status, answer = read(random_app_url, open(path, "rb").read(), decoder)
        assert status == 200 and answer["decoder"] == decoder
        check_page_shape(answer, read_image(path))
        expected = model.read_page(read_image(path))
        assert answer["text"] == expected["text"] and len(answer["words"]) == len(expected["words"]) >= 1


def test_a_page_reads_as_lines_of_words(app_url, demo_dir):
    page = demo_page(demo_dir)
    status, answer = read(app_url, png(page))
    assert status == 200 and answer["decoder"] == "greedy"
    check_page_shape(answer, page)
    assert len(answer["lines"]) == 2 and len(answer["words"]) >= 4
    assert [word["line"] for word in answer["words"]] == sorted(word["line"] for word in answer["words"])
    check_xml(answer, "image", page)


def check_xml(answer, name, image):
    """The answer's ALTO and PAGE XML are valid, name the image and hold its lines' texts."""
    texts = [line["text"] for line in answer["lines"]]
    alto = valid(answer["alto_xml"], "alto-4-4.xsd")
    assert [line["text"] for line in alto_lines(alto)] == texts
    assert alto.findtext(".//a:fileName", namespaces=ALTO) == name
    page = valid(answer["page_xml"], "pagecontent-2019-07-15.xsd")
    assert [line["text"] for line in page_lines(page)] == texts
    assert page.find("p:Page", PAGE).get("imageFilename") == name
    assert page.find("p:Page", PAGE).get("imageWidth") == str(image.shape[1])


def png_claiming_size(width, height):
    """A real 1x1 PNG whose header says width x height: small to send, huge if decoded."""
    data = bytearray(png(np.full((1, 1, 3), 255, np.uint8)))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_bad_requests_get_a_json_error_and_the_server_goes_on(app_url, demo_dir):
    word = open(demo_word_paths(demo_dir)[0], "rb").read()
    cases = [  # (method, path, body, content type) -> status, words the error must hold
        ("POST", "api/read", b"this is not an image", "image/png", 400, "not an image"),
        ("POST", "api/read", word[:len(word) // 2], "image/png", 400, "damaged or truncated PNG"),
        ("POST", "api/read", b"", "image/png", 400, "empty"),
        ("POST", "api/read", word, "text/plain", 415, "Content-Type image/"),
        ("POST", "api/read", png(np.zeros((5, 200, 3), np.uint8)), "image/png", 400, "200x5 pixels"),
        ("POST", "api/read", png_claiming_size(30000, 30000), "image/png", 413, "30000x30000 pixels"),
        ("POST", "api/read", b"\x89PNG" + bytes(21 * 2**20), "image/png", 413, "the limit is 20 MB"),
        ("POST", "api/read?decoder=magic", word, "image/png", 400, "unknown decoder 'magic'"),
        ("POST", "api/other", word, "image/png", 404, "/api/read"),
        ("GET", "no/such/page", None, None, 404, "nothing at /no/such/page"),
        ("GET", "../app.py", None, None, 404, "nothing at"),
        ("DELETE", "api/read", None, None, 405, "DELETE is not supported"),
        ("PUT", "api/read", word, "image/png", 405, "PUT is not supported"),
    ]
    for method, path, body, content_type, expected_status, expected_error in cases:
        status, answer = request(app_url + path, method, body, content_type)
        assert (status, list(answer)) == (expected_status, ["error"]), (method, path, answer)
        assert expected_error in answer["error"], (method, path, answer)

    host, port = re.match(r"http://(.+):(\d+)/", app_url).groups()
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.putrequest("POST", "/api/read")  # no Content-Length: the end of the body is unknown
    connection.putheader("Content-Type", "image/png")
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 411 and "Content-Length" in json.loads(response.read())["error"]
    connection.close()
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    connection.request("BREW", "/")  # a method http.server does not know at all
    response = connection.getresponse()
    assert response.status == 405 and "BREW is not supported" in json.loads(response.read())["error"]
    connection.close()

    status, answer = read(app_url, word)
    assert status == 200 and len(answer["words"]) == 1


def test_requests_at_once_each_get_their_own_answer(random_app_url, demo_dir):
    images = [open(path, "rb").read() for path in demo_word_paths(demo_dir)[:4]]
    jobs = [(image, decoder) for image in images for decoder in ("greedy", "beam", "lexicon")] + [(b"junk", "greedy")]
    one_by_one = [read(random_app_url, image, decoder) for image, decoder in jobs]
    with ThreadPoolExecutor(len(jobs)) as pool:
        at_once = list(pool.map(lambda job: read(random_app_url, *job), jobs))
    timed = ("seconds", "alto_xml", "page_xml")  # the XML files say when they were written
    strip = [(status, {k: v for k, v in answer.items() if k not in timed}) for status, answer in one_by_one]
    assert [(status, {k: v for k, v in answer.items() if k not in timed}) for status, answer in at_once] == strip
    assert [status for status, _ in at_once] == [200] * (len(jobs) - 1) + [400]
    assert len({answer["text"] for _, answer in at_once[:-1]}) > 1  # the readings differ, so a mix-up would show


def test_with_no_models_folder_the_page_reads_with_the_starting_model(tmp_path, demo_dir):
    with running_app(None, tmp_path) as url:
        assert "using the starting model" in (tmp_path / "app.log").read_text()  # said at start, before serving
        image = cv2.imread(demo_word_paths(demo_dir)[0])
        status, answer = read(url, png(image))
        assert status == 200 and answer["lines"] and answer["text"] == "\n".join(line["text"] for line in answer["lines"])


def test_the_command_line_says_what_is_wrong(tmp_path, trained_model_dir, app_url):
    result = run_script("app.py", "--model", tmp_path / "none", "--host", "0.0.0.0")
    assert result.returncode == 1 and result.stderr.startswith("warning: serving on 0.0.0.0: anyone who can reach")
    assert "error: no model at" in result.stderr
    port = re.search(r":(\d+)/", app_url).group(1)
    result = run_script("app.py", "--model", trained_model_dir, "--port", port)
    assert result.returncode == 1 and f"error: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


# ---- the page in a headless browser ----

@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -r requirements-dev.txt)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,1300",
                     "--force-device-scale-factor=1"]:
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


def open_page(browser, url):
    from selenium.webdriver.support.ui import WebDriverWait
    browser.get(url)
    WebDriverWait(browser, 30).until(lambda b: b.find_elements("css selector", "#decoder option"))


def wait_for_answer(browser, previous_status=""):
    """The page's status line once a reading or an error has come back."""
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(browser, 60).until(lambda b: b.find_element("id", "error").is_displayed() or (
        b.find_element("id", "result").is_displayed() and b.find_element("id", "status").text not in ("Reading…", previous_status)))
    return browser.find_element("id", "status").text


def shown_words(browser):
    return [span.text for span in browser.find_elements("css selector", "#text .word")]


def word_strokes(word, pad_width=800, pad_height=240):
    """The demo set's pen strokes for `word` (demo_words.py), as pad pixel polylines, centred."""
    from htr.data.demo import chaikin, pen_strokes
    style = {"width": 1.0, "spacing": 1.0, "jitter": 0.1, "cursive": True}
    strokes = [chaikin(stroke, 2) * [1, -1] for stroke in pen_strokes(word, style, np.random.default_rng(0))]
    points = np.vstack(strokes)
    scale = min(0.8 * pad_width / np.ptp(points[:, 0]), 0.7 * pad_height / np.ptp(points[:, 1]))
    offset = np.array([pad_width, pad_height]) / 2 - (points.min(axis=0) + points.max(axis=0)) / 2 * scale
    return [stroke * scale + offset for stroke in strokes]


def draw(browser, strokes, pointer="mouse"):
    """Draws the strokes on the pad with real input events (pointerdown, pointermove, pointerup)."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput
    pad = browser.find_element("id", "pad")
    rect = browser.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.width];", pad)
    scale = rect[2] / 800
    actions = ActionBuilder(browser, mouse=PointerInput(pointer, pointer), duration=0)
    for stroke in strokes:
        for i, (x, y) in enumerate(stroke):
            actions.pointer_action.move_to_location(int(rect[0] + x * scale), int(rect[1] + y * scale))
            if i == 0:
                actions.pointer_action.pointer_down()
        actions.pointer_action.pointer_up()
    actions.perform()


def pad_png(browser):
    data_url = browser.execute_script("return document.getElementById('pad').toDataURL('image/png');")
    return base64.b64decode(data_url.split(",", 1)[1])


def test_a_word_drawn_on_the_pad_is_read(browser, random_app_url, tmp_path):
    open_page(browser, random_app_url)
    strokes = word_strokes("hide")
    draw(browser, strokes[:-1])
    draw(browser, strokes[-1:], pointer="touch")  # the last stroke with a finger
    ink = cv2.imdecode(np.frombuffer(pad_png(browser), np.uint8), cv2.IMREAD_GRAYSCALE) < 128
    x, y = np.round(strokes[-1][len(strokes[-1]) // 2]).astype(int)
    assert ink.mean() > 0.01 and ink[y - 2:y + 3, x - 2:x + 3].any()  # both the mouse and the finger drew

    browser.find_element("id", "read-drawing").click()
    status = wait_for_answer(browser)
    _, answer = read(random_app_url, pad_png(browser))  # the same pixels, through the API
    assert answer["text"] and shown_words(browser) == [word["text"] or "∅" for word in answer["words"]]
    assert f"{len(answer['words'])} word" in status and "greedy decoder" in status
    assert len(browser.find_elements("css selector", "#boxes rect")) == len(answer["words"])
    browser.save_screenshot(str(tmp_path / "drawn_word.png"))

    from selenium.webdriver.support.ui import Select
    Select(browser.find_element("id", "decoder")).select_by_value("beam")  # the same drawing read again
    assert "beam decoder" in wait_for_answer(browser, status)
    browser.find_element("id", "clear").click()
    assert not (cv2.imdecode(np.frombuffer(pad_png(browser), np.uint8), cv2.IMREAD_GRAYSCALE) < 128).any()


def test_a_chosen_or_dropped_image_is_read_and_bad_files_are_explained(browser, random_app_url, demo_dir, tmp_path):
    open_page(browser, random_app_url)
    page_path = str(tmp_path / "page.png")
    cv2.imwrite(page_path, demo_page(demo_dir))
    browser.find_element("id", "file").send_keys(page_path)
    wait_for_answer(browser)
    _, answer = read(random_app_url, open(page_path, "rb").read())
    assert shown_words(browser) == [word["text"] or "∅" for word in answer["words"]] and len(answer["words"]) >= 4
    boxes = browser.find_elements("css selector", "#boxes rect")
    assert [[int(rect.get_attribute(k)) for k in ("x", "y", "width", "height")] for rect in boxes] == \
        [word["box"] for word in answer["words"]]
    rows = browser.find_elements("css selector", "#words tbody tr")
    assert [row.text.split()[1:3] for row in rows] == [[word["text"] or "∅", f"{js_round(word['confidence'] * 100)}%"]
                                                       for word in answer["words"]]
    weak = [word["confidence"] < 0.5 for word in answer["words"]]  # app.js WEAK_CONFIDENCE
    assert ["weak" in span.get_attribute("class") for span in browser.find_elements("css selector", "#text .word")] == weak
    assert ["weak" in (rect.get_attribute("class") or "") for rect in boxes] == weak
    check_downloads(browser, answer, cv2.imread(page_path), tmp_path / "downloads")

    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("shopping list: eggs")
    browser.find_element("id", "file").send_keys(str(not_an_image))
    wait_for_answer(browser)
    error = browser.find_element("id", "error")
    assert error.text == "Cannot read this image: cannot read the upload as an image: not an image file OpenCV can read"

    word_path = demo_word_paths(demo_dir)[0]
    browser.execute_script("""
        const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "word.png", {type: "image/png"}));
        document.getElementById("drop-zone").dispatchEvent(new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
    """, base64.b64encode(open(word_path, "rb").read()).decode())
    wait_for_answer(browser)
    _, answer = read(random_app_url, open(word_path, "rb").read())
    assert not error.is_displayed() and shown_words(browser) == [word["text"] or "∅" for word in answer["words"]]


def check_downloads(browser, answer, image, folder):
    """The page's Download ALTO and Download PAGE XML links, clicked: the files arrive, named after
    the image, and are the reading in each format."""
    from selenium.webdriver.support.ui import WebDriverWait
    folder.mkdir()
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(folder)})
    for link, name in [("download-alto", "page.alto.xml"), ("download-page", "page.page.xml")]:
        browser.find_element("id", link).click()
        WebDriverWait(browser, 30).until(lambda _: (folder / name).is_file())
    assert sorted(os.listdir(folder)) == ["page.alto.xml", "page.page.xml"]
    check_xml({**answer, "alto_xml": (folder / "page.alto.xml").read_text(encoding="utf-8"),
               "page_xml": (folder / "page.page.xml").read_text(encoding="utf-8")}, "page.png", image)
