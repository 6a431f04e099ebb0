"""The frontend in real headless Chromium: rows from the database, and the whole system end to
end (receiver, nsqd, processor, face service with dlib and real photos). Screenshots are saved
to .artifacts/ for a person to look at."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image
from selenium.common.exceptions import NoAlertPresentException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from kubeface.core.statuses import Status
from tests.support.rows import add_image
from tests.support.web import WebService
from tests.support.web_fixtures import log_in

EVIL = '<img src=x onerror=alert(1)><script>alert("x")</script>'
EVIL_FILE = "<img src=x onerror=alert(1)>.jpg"  # no "/": a file name


def table(driver) -> dict[str, dict[str, str]]:
    """The table as the person sees it: path -> {person, status, faces, error}."""
    rows = {}
    for tr in driver.find_elements(By.CSS_SELECTOR, "#images tbody tr"):
        cells = [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        rows[cells[1]] = {"id": cells[0], "person": cells[2], "status": cells[3],
                          "faces": cells[4], "error": cells[5]}
    return rows


def no_alert(driver) -> bool:
    try:
        driver.switch_to.alert.dismiss()
    except NoAlertPresentException:
        return True
    return False


def test_browser_shows_rows_names_as_text_and_the_face_boxes(browser, frontend, db, image_dirs,
                                                             artifacts):
    _, unknown = image_dirs
    # A sideways phone photo: 400x300 stored, 300x400 upright (EXIF orientation 6).
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (400, 300), (90, 120, 160)).save(unknown / "phone.jpg", exif=exif)
    phone = add_image(db, "phone.jpg", "processed", "Barack Obama",
                      faces=[(50, 200, 150, 100, "Barack Obama"), (220, 260, 300, 180, None)])
    add_image(db, f"{EVIL}.jpg", "processed", EVIL, faces=[(1, 2, 3, 0, EVIL)])
    add_image(db, "gone.jpg", "failed", error="file not found: gone.jpg")

    log_in(browser, frontend.url)  # sent to the login form first, then back to the table
    rows = table(browser)
    assert rows[f"{EVIL}.jpg"]["person"] == EVIL  # shown as text, exactly
    assert rows["gone.jpg"]["status"] == "Failed"
    assert rows["gone.jpg"]["error"] == "file not found: gone.jpg"
    assert rows["phone.jpg"]["status"] == Status.PROCESSED.words
    assert browser.find_elements(By.TAG_NAME, "script") == []
    # The only pictures in the table are its thumbnails, from this server.
    assert {i.get_dom_attribute("src") for i in browser.find_elements(
        By.CSS_SELECTOR, "#images img")} <= {f"/images/{n}/thumb" for n in range(1, 10)}
    assert no_alert(browser)
    browser.save_screenshot(str(artifacts / "frontend-rows-table.png"))

    browser.find_element(By.LINK_TEXT, str(phone)).click()
    svg = browser.find_element(By.CSS_SELECTOR, ".picture svg")
    assert svg.get_dom_attribute("viewBox") == "0 0 300 400"  # upright, as the boxes are
    assert len(svg.find_elements(By.TAG_NAME, "rect")) == 2
    assert [t.text for t in svg.find_elements(By.TAG_NAME, "text")] == ["Barack Obama",
                                                                         "unknown"]
    browser.save_screenshot(str(artifacts / "frontend-rows-image.png"))


@pytest.mark.slow
def test_end_to_end_post_watch_the_table_and_open_an_image(browser, service_env, receiver,
                                                           processor, db, sample_images,
                                                           image_dirs, tmp_path, artifacts):
    _, unknown = image_dirs
    shutil.copyfile(unknown / "obama2.jpg", unknown / EVIL_FILE)
    frontend = WebService("frontend", {**service_env, "FRONTEND_REFRESH_SECONDS": "1"},
                          tmp_path / "frontend.log").start()
    try:
        log_in(browser, frontend.url)
        assert "No images" in browser.find_element(By.CLASS_NAME, "empty").text

        # The article's way, one by one and in bulk: curl -d '{"path": ...}'.
        names = sorted(sample_images)
        first = receiver.post_json("/image/post", {"path": names[0]})
        assert first.status == 202, first.text
        bulk = receiver.post_json("/images/post", {"paths": [
            {"path": n} for n in [*names[1:], EVIL_FILE, "missing.jpg"]]})
        assert bulk.status == 202 and bulk.json()["accepted"] == len(names) + 1, bulk.text

        browser.refresh()  # as a person would after posting; from now on it reloads itself
        assert browser.find_elements(By.CSS_SELECTOR, 'meta[http-equiv="refresh"]') != [] or \
            "Pending" not in browser.page_source
        expected = {n: (Status(e["status"]).words, e["person"] or "", str(e["faces"]))
                    for n, e in sample_images.items()}
        expected[EVIL_FILE] = (Status.PROCESSED.words, "Barack Obama", "1")
        expected["missing.jpg"] = (Status.FAILED.words, "", "")

        def settled(driver) -> bool:
            # The page reloads itself while work is pending: a read may meet a page going away.
            rows = table(driver)
            return len(rows) == len(expected) and all(
                r["status"] not in (Status.PENDING.words, Status.PROCESSING.words)
                for r in rows.values())

        # A page half parsed while it reloads may show a row without its cells yet.
        WebDriverWait(browser, 300, poll_frequency=1,
                      ignored_exceptions=[WebDriverException, IndexError]).until(settled)
        browser.get(frontend.url + "/")  # the last reload: no refresh once all is settled
        assert browser.find_elements(By.CSS_SELECTOR, 'meta[http-equiv="refresh"]') == []
        rows = table(browser)
        got = {path: (r["status"], r["person"], r["faces"]) for path, r in rows.items()}
        assert got == expected
        assert "not found" in rows["missing.jpg"]["error"] or "missing" in \
            rows["missing.jpg"]["error"]
        assert no_alert(browser) and browser.find_elements(By.TAG_NAME, "script") == []
        browser.save_screenshot(str(artifacts / "frontend-e2e-table.png"))

        # The group photo: seven faces boxed, Obama's named.
        browser.find_element(By.LINK_TEXT, rows["group_with_obama.jpg"]["id"]).click()
        svg = browser.find_element(By.CSS_SELECTOR, ".picture svg")
        labels = [t.text for t in svg.find_elements(By.TAG_NAME, "text")]
        assert len(svg.find_elements(By.TAG_NAME, "rect")) == 7
        assert labels.count("Barack Obama") == 1 and labels.count("unknown") == 6
        browser.save_screenshot(str(artifacts / "frontend-e2e-group.png"))

        # The sideways phone photo is drawn upright, its one face named.
        browser.get(f"{frontend.url}/images/{rows['obama_exif_rotated.jpg']['id']}")
        svg = browser.find_element(By.CSS_SELECTOR, ".picture svg")
        width, height = map(int, svg.get_dom_attribute("viewBox").split()[2:])
        with Image.open(unknown / "obama_exif_rotated.jpg") as im:
            turned = im.getexif().get(0x0112, 1) in (5, 6, 7, 8)
            assert turned and (width, height) == im.size[::-1]
        assert [t.text for t in svg.find_elements(By.TAG_NAME, "text")] == ["Barack Obama"]
        browser.save_screenshot(str(artifacts / "frontend-e2e-rotated.png"))

        # The picture itself really reaches the browser.
        browser.get(f"{frontend.url}/images/{rows['group_with_obama.jpg']['id']}/picture")
        assert browser.find_element(By.TAG_NAME, "img").get_property("naturalWidth") > 0
    finally:
        frontend.stop()
    assert Path(artifacts / "frontend-e2e-table.png").stat().st_size > 10_000
