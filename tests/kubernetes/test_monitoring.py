"""Prometheus on the Kubernetes target: every app pod carries the scrape annotations of a port it
declares, the processor's liveness probe is its /healthz, and the optional Prometheus Operator
monitors (off by default) select exactly the Services and pods that serve /metrics."""

from __future__ import annotations

import pytest

from tests.support.manifests import MINIMAL, Rendered, render_roles

APP_PODS = {"receiver": "http", "frontend": "http", "processor": "metrics", "face": "metrics"}


def _pod(rendered: Rendered, name: str) -> dict:
    return rendered.named("Deployment", name)["spec"]["template"]


def _ports(template: dict) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for c in template["spec"]["containers"]
            for p in c.get("ports", [])}


def _matches(selector: dict, labels: dict) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    return all(labels.get(e["key"]) in e["values"] for e in selector.get("matchExpressions", []))


@pytest.fixture(scope="module")
def monitored(tmp_path_factory) -> Rendered:
    return render_roles(tmp_path_factory.mktemp("k8s-monitoring"),
                        {**MINIMAL, "k8s_common_namespace": "kf-monitoring",
                         "k8s_monitoring_enabled": True,
                         "k8s_monitoring_labels": {"release": "prometheus"}})


def test_pods_are_annotated_for_prometheus_and_the_processor_has_a_liveness_probe(rendered):
    assert not rendered.of_kind("ServiceMonitor") and not rendered.of_kind("PodMonitor")
    for name, port_name in APP_PODS.items():
        template = _pod(rendered, name)
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true", name
        assert annotations["prometheus.io/path"] == "/metrics", name
        assert int(annotations["prometheus.io/port"]) == _ports(template)[port_name], name
    (processor,) = _pod(rendered, "processor")["spec"]["containers"]
    probe = processor["livenessProbe"]["httpGet"]
    assert (probe["path"], probe["port"]) == ("/healthz", "metrics")
    env = {e["name"]: e.get("value") for e in processor["env"]}
    assert int(env["PROCESSOR_METRICS_PORT"]) == _ports(_pod(rendered, "processor"))["metrics"]
    (face,) = _pod(rendered, "face")["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in face["env"]}
    assert int(env["FACE_METRICS_PORT"]) == _ports(_pod(rendered, "face"))["metrics"]


def test_the_monitors_select_what_serves_metrics(monitored):
    (service_monitor,) = monitored.of_kind("ServiceMonitor")
    (pod_monitor,) = monitored.of_kind("PodMonitor")
    for monitor in (service_monitor, pod_monitor):
        assert monitor["metadata"]["labels"]["release"] == "prometheus"
        assert monitor["spec"]["namespaceSelector"]["matchNames"] == ["kf-monitoring"]
    selected = [s["metadata"]["name"] for s in monitored.of_kind("Service")
                if _matches(service_monitor["spec"]["selector"], s["metadata"]["labels"])]
    assert sorted(selected) == ["frontend", "receiver"]
    for name in selected:
        ports = [p["name"] for p in monitored.named("Service", name)["spec"]["ports"]]
        assert service_monitor["spec"]["endpoints"][0]["port"] in ports
    pods = [d["metadata"]["name"] for d in monitored.of_kind("Deployment")
            if _matches(pod_monitor["spec"]["selector"],
                        d["spec"]["template"]["metadata"]["labels"])]
    assert sorted(pods) == ["face", "processor"]
    for name in pods:
        assert pod_monitor["spec"]["podMetricsEndpoints"][0]["port"] in _ports(
            _pod(monitored, name))


def _tls_secret(rendered: Rendered, name: str) -> str:
    volumes = _pod(rendered, name)["spec"]["volumes"]
    return next(v["secret"]["secretName"] for v in volumes
                if "secret" in v and "tls" in v["secret"]["secretName"])


def test_the_service_monitor_scrapes_over_https_verified_by_the_deployment_ca(
        monitored, tmp_path_factory):
    (endpoint,) = monitored.of_kind("ServiceMonitor")[0]["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"
    ca = endpoint["tlsConfig"]["ca"]["secret"]
    assert (ca["name"], ca["key"]) == (_tls_secret(monitored, "receiver"), "ca.crt")
    assert _tls_secret(monitored, "frontend") == ca["name"]
    assert endpoint["tlsConfig"]["serverName"] == "receiver.kf-monitoring.svc"
    plain = render_roles(tmp_path_factory.mktemp("k8s-monitoring-plain"),
                         {**MINIMAL, "k8s_monitoring_enabled": True, "k8s_common_tls": False})
    (endpoint,) = plain.of_kind("ServiceMonitor")[0]["spec"]["endpoints"]
    assert "scheme" not in endpoint and "tlsConfig" not in endpoint
