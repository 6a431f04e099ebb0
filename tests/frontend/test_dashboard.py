"""``/dashboard`` with real data: the sample photos posted to the real receiver and recognised
by the real processor and face service, then the page in headless Chromium under the strict CSP
(no script at all). The screenshot is saved to .artifacts/dashboard.png."""

from __future__ import annotations

import re
import time

import pytest
from selenium.webdriver.common.by import By

from kubeface.core.statuses import Status
from kubeface.frontend.dashboard import histogram_quantile, percentile
from tests.support.processor import wait_final
from tests.support.procs import free_port
from tests.support.web import WebService
from tests.support.web_fixtures import log_in


def test_quantiles():
    assert percentile([], 0.5) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.95) == pytest.approx(3.85)
    # 10 calls under 0.5 s, 10 between 0.5 and 1 s: the median is at 0.5 s.
    buckets = [(0.25, 4.0), (0.5, 10.0), (1.0, 20.0), (float("inf"), 20.0)]
    assert histogram_quantile(0.5, buckets) == 0.5
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.95)
    assert histogram_quantile(0.5, [(1.0, 0.0), (float("inf"), 0.0)]) is None


@pytest.mark.slow
def test_dashboard_with_real_data_in_chromium(processor, receiver, face_service, db,
                                              sample_images, service_env, browser, tmp_path,
                                              artifacts):
    names = sorted(sample_images)
    reply = receiver.post_json("/images/post", {"paths": [{"path": n} for n in names]})
    assert reply.status == 202
    ids = [image["id"] for image in reply.json()["images"]]
    final = wait_final(db, ids, timeout=300)
    frontend = WebService("frontend", {
        **service_env, "GRPC_ADDRESS": face_service.address,
        "FACE_METRICS_PORT": face_service.env["FACE_METRICS_PORT"]}, tmp_path / "frontend.log")
    frontend.start()
    try:
        reply = frontend.call("GET", "/dashboard")
        assert reply.status == 200, reply.text
        assert "script-src" not in reply.headers["Content-Security-Policy"]
        assert reply.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert "<script" not in reply.text.lower()
        assert 'href="/dashboard"' in frontend.call("GET", "/").text  # linked from the table

        log_in(browser, frontend.url, page="/dashboard")
        time.sleep(0.5)
        browser.save_screenshot(str(artifacts / "dashboard.png"))
        chart = browser.find_element(By.ID, "settled-chart")
        assert chart.size["width"] > 600 and chart.size["height"] > 150
        bars = chart.find_elements(By.CSS_SELECTOR, "rect[data-status]")
        shown: dict[str, int] = {}
        for bar in bars:
            status = bar.get_attribute("data-status")
            shown[status] = shown.get(status, 0) + int(bar.get_attribute("data-count"))
        settled: dict[str, int] = {}
        for status in final.values():
            settled[status] = settled.get(status, 0) + 1
        assert shown == settled
        counts = {td.get_attribute("data-status"): int(td.text)
                  for td in browser.find_elements(By.CSS_SELECTOR, "#counts td[data-status]")}
        assert counts == {s.value: settled.get(s.value, 0) for s in Status}
        assert browser.find_element(By.ID, "queue").text.startswith("0 waiting, 0 in flight")
        assert browser.find_element(By.ID, "face-state").text == "serving"
        assert browser.find_element(By.ID, "breaker").text.startswith("closed: 0 image(s)")
        settle = browser.find_element(By.ID, "settle").text
        assert re.fullmatch(r"p50 \d+(\.\d)? m?s, p95 \d+(\.\d)? m?s", settle), settle
        recognition = browser.find_element(By.ID, "recognition").text
        assert re.fullmatch(rf"p50 \d+(\.\d)? m?s, p95 \d+(\.\d)? m?s \({len(names)} calls\)",
                            recognition), recognition
        assert not browser.find_elements(By.TAG_NAME, "script")
    finally:
        frontend.stop()


def test_dashboard_shows_sources_that_do_not_answer(service_env, db, tmp_path):
    """No nsqd, no face service: the page still renders and says what did not answer."""
    frontend = WebService("frontend", {
        **service_env, "NSQD_HTTP_ADDRESS": f"127.0.0.1:{free_port()}",
        "GRPC_ADDRESS": f"127.0.0.1:{free_port()}", "FACE_METRICS_PORT": str(free_port())},
        tmp_path / "frontend.log").start()
    try:
        reply = frontend.call("GET", "/dashboard")
    finally:
        frontend.stop()
    assert reply.status == 200, reply.text
    assert "settled-chart" in reply.text and "data-count" not in reply.text  # no image yet
    assert re.search(r'id="queue">\s*nsqd at 127.0.0.1:\d+ did not answer', reply.text)
    assert re.search(r'id="face-state">not serving \(face service UNAVAILABLE', reply.text)
    assert "face service&#039;s metrics at http://127.0.0.1:" in reply.text
