"""The people pages in real headless Chromium, the whole flow with the real services: create a
person, upload their photo, upload probes, see them recognised, correct faces, and see a
correction re-label another image of that face without detecting it again."""

from __future__ import annotations

import hashlib

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.support.face import FaceService
from tests.support.processor import Processor
from tests.support.web import WebService
from tests.support.web_fixtures import log_in


@pytest.fixture
def system(service_env, db, image_dirs, photos, tmp_path):
    """Face service (nobody known yet), processor and frontend on this test's database."""
    face = FaceService(tmp_path / "face", {**service_env, "FACE_WORKERS": "1"}).start()
    env = {**service_env, "GRPC_ADDRESS": face.address}
    processor = Processor(tmp_path / "processor", env).start()
    frontend = WebService("frontend", {**env, "FRONTEND_REFRESH_SECONDS": "1"},
                          tmp_path / "frontend.log").start()
    yield frontend
    for part in (frontend, processor, face):
        part.stop()


def uploaded(path) -> str:
    return f"uploads/{hashlib.sha256(path.read_bytes()).hexdigest()}{path.suffix}"


def image_id(db, path: str) -> int:
    return int(db.query("SELECT id FROM images WHERE path = :p", p=path)[0].id)


def settled(db, paths: list[str]):
    def check(_driver) -> bool:
        rows = db.query("SELECT status FROM images WHERE path IN :p", p=tuple(paths))
        return len(rows) == len(paths) and all(
            r.status not in ("pending", "processing") for r in rows)
    return check


def submit(browser, element) -> None:
    """Click and wait for the next page (a click returns before the browser has navigated)."""
    element.click()
    WebDriverWait(browser, 60).until(expected_conditions.staleness_of(element))


def face_people(driver) -> list[str]:
    return [td.text for td in driver.find_elements(By.CSS_SELECTOR, "#face-forms td.person")]


@pytest.mark.slow
def test_create_upload_recognise_and_correct(browser, system, db, photos, artifacts):
    known, unknown = photos / "known", photos / "unknown"
    site = system.url

    # 1. Create a person.
    log_in(browser, site, page="/people")
    form = browser.find_element(By.ID, "new-person")
    form.find_element(By.NAME, "name").send_keys("Barack Obama")
    submit(browser, form.find_element(By.TAG_NAME, "button"))
    assert browser.find_element(By.CLASS_NAME, "person-name").text == "Barack Obama"
    person_url = browser.current_url

    # 2. Upload their photo.
    form = browser.find_element(By.ID, "add-photo")
    form.find_element(By.NAME, "file").send_keys(str(known / "barack_obama.jpg"))
    submit(browser, form.find_element(By.TAG_NAME, "button"))
    (thumb,) = browser.find_elements(By.CSS_SELECTOR, ".photos img")
    WebDriverWait(browser, 10).until(lambda _: thumb.get_property("naturalWidth") > 0)
    assert browser.find_elements(By.TAG_NAME, "script") == []

    # 3. Upload probes: another Obama, and two pictures of someone nobody knows yet.
    probes = [unknown / "obama2.jpg", unknown / "hopper_pillow.jpg", known / "grace_hopper.jpg"]
    browser.get(site + "/upload")
    form = browser.find_element(By.ID, "upload")
    form.find_element(By.NAME, "file").send_keys("\n".join(str(p) for p in probes))
    submit(browser, form.find_element(By.TAG_NAME, "button"))
    paths = [uploaded(p) for p in probes]
    WebDriverWait(browser, 300, poll_frequency=1).until(settled(db, paths))

    # 4. See them recognised.
    obama, hopper, hopper2 = (image_id(db, p) for p in paths)
    browser.get(f"{site}/images/{obama}")
    assert browser.find_element(By.CSS_SELECTOR, "dd.person").text == "Barack Obama"
    assert face_people(browser) == ["Barack Obama"]
    browser.get(f"{site}/images/{hopper}")
    assert face_people(browser) == ["unknown"]
    browser.save_screenshot(str(artifacts / "people-unknown-face.png"))

    # 5. Correct a face: this unknown face is Grace Hopper (a new name).
    form = browser.find_element(By.CSS_SELECTOR, "#face-0 form.name-face")
    form.find_element(By.NAME, "new_name").send_keys("Grace Hopper")
    submit(browser, form.find_element(By.TAG_NAME, "button"))
    assert browser.find_element(By.CSS_SELECTOR, "dd.person").text == "Grace Hopper"

    # 6. The correction re-labelled the other image of that face, with no detection.
    browser.get(f"{site}/images/{hopper2}")
    assert browser.find_element(By.CSS_SELECTOR, "dd.person").text == "Grace Hopper"
    browser.get(site + "/people?q=grace")
    assert [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#people td.person a")] \
        == ["Grace Hopper"]
    assert browser.find_element(By.CSS_SELECTOR, "#people td.num:last-child").text == "2"
    submit(browser, browser.find_element(By.LINK_TEXT, "Grace Hopper"))
    assert len(browser.find_elements(By.CSS_SELECTOR, ".images img")) == 2
    browser.save_screenshot(str(artifacts / "people-person.png"))

    # The table, filtered to that person, with thumbnails made by the server.
    browser.get(site + "/")
    form = browser.find_element(By.ID, "person-filter")
    Select(form.find_element(By.NAME, "person")).select_by_visible_text("Grace Hopper")
    submit(browser, form.find_element(By.TAG_NAME, "button"))
    rows = browser.find_elements(By.CSS_SELECTOR, "#images tbody tr")
    assert sorted(r.get_attribute("id") for r in rows) == sorted(
        f"image-{i}" for i in (hopper, hopper2))
    thumbs = browser.find_elements(By.CSS_SELECTOR, "#images img.thumb")
    assert len(thumbs) == 2
    WebDriverWait(browser, 10).until(
        lambda _: all(t.get_property("naturalWidth") > 0 for t in thumbs))

    # "Not this person": the Obama probe is matched to nobody from now on.
    browser.get(f"{site}/images/{obama}")
    submit(browser, browser.find_element(By.CSS_SELECTOR, "#face-0 form.reject-face button"))
    assert face_people(browser) == ["unknown"]
    assert browser.find_element(By.CSS_SELECTOR, "dd .status").text == \
        "Unknown person"
    browser.get(person_url)
    assert "Images (0)" in browser.page_source


def test_a_form_without_its_token_is_refused(system, db):
    reply = system.call("POST", "/people", "name=Mallory",
                        {"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 403
    forged = system.call("POST", "/people", "name=Mallory&csrf=" + "a" * 32,
                         {"Content-Type": "application/x-www-form-urlencoded",
                          "Cookie": "kubeface_csrf=" + "b" * 32})
    assert forged.status == 403
    assert db.query("SELECT COUNT(*) AS n FROM person")[0].n == 0
    page = system.call("GET", "/people")
    assert page.status == 200 and "kubeface_csrf=" in page.headers.get("Set-Cookie", "")
    assert "samesite=strict" in page.headers["Set-Cookie"].lower()
    token = page.headers["Set-Cookie"].split("kubeface_csrf=")[1].split(";")[0]
    ok = system.call("POST", "/people", f"name=Alice&csrf={token}",
                     {"Content-Type": "application/x-www-form-urlencoded",
                      "Cookie": f"kubeface_csrf={token}"})
    assert ok.status == 303 and ok.headers["Location"].startswith(("/people/", system.url))
    for bad in ("name=&csrf=" + token, f"name=Alice&csrf={token}"):  # empty, then taken
        reply = system.call("POST", "/people", bad,
                            {"Content-Type": "application/x-www-form-urlencoded",
                             "Cookie": f"kubeface_csrf={token}"})
        assert reply.status in (400, 409) and "<script" not in reply.text
    assert db.query("SELECT COUNT(*) AS n FROM person")[0].n == 1
    # Thumbnails of nothing are 404 pages, never 500.
    assert system.call("GET", "/photos/99/thumb").status == 404
    assert system.call("GET", "/images/99/thumb").status == 404

