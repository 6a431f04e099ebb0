"""Fixtures: the real receiver and frontend on this test's database and NSQ, and headless
Chromium (Debian's chromium + chromedriver, driven by selenium)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeface.core.db import Database
from tests.support import tls
from tests.support.web import PASSWORD, USER, WebService


@pytest.fixture
def receiver(service_env: dict[str, str], db: Database, tmp_path: Path) -> Iterator[WebService]:
    """``kubeface receiver`` on a free port (the database is migrated first, by ``db``)."""
    service = WebService("receiver", service_env, tmp_path / "receiver.log").start()
    yield service
    service.stop()


@pytest.fixture
def frontend(service_env: dict[str, str], db: Database, tmp_path: Path) -> Iterator[WebService]:
    service = WebService("frontend", service_env, tmp_path / "frontend.log").start()
    yield service
    service.stop()


def served_over(scheme: str, command: str, env: dict[str, str], tmp_path: Path) -> WebService:
    """``kubeface <command>`` over plain HTTP (``scheme`` "http"), or over HTTPS with a
    certificate from a new test CA (not started)."""
    log = tmp_path / f"{command}.log"
    if scheme == "http":
        return WebService(command, env, log)
    certs = tls.make(tmp_path / "tls")
    return WebService(command, {**env, **certs.env()}, log, ca_file=certs.ca)


CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@pytest.fixture
def browser(tmp_path: Path):
    """A headless Chromium with its own profile; no network but loopback is ever asked for."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail("chromium and chromium-driver are needed: run scripts/setup.sh")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", f"--user-data-dir={tmp_path / 'chromium-profile'}",
                 "--window-size=1280,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(
        executable_path=CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log")))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def log_in(browser, site: str, user: str = USER, password: str = PASSWORD,
           page: str = "/") -> None:
    """Open ``page`` in Chromium, which is sent to the login form; fill it in and land back on
    ``page``, logged in."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(site + page)
    assert browser.current_url.startswith(site + "/login"), browser.current_url
    form = browser.find_element(By.ID, "login")
    form.find_element(By.NAME, "name").send_keys(user)
    form.find_element(By.NAME, "password").send_keys(password)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 10).until(expected_conditions.url_to_be(site + page))
    assert browser.find_element(By.ID, "logout-link").text == f"Log out {user}"
