"""HTTPS on Kubernetes, in the rendered manifests: the receiver and the frontend read their
certificate and key from the kubernetes.io/tls Secret k8s_tls makes at deploy time, and are
probed and scraped over HTTPS; with k8s_common_tls false, plain HTTP as before. (The Secret
itself, the CA and the smoke test's verification need a cluster: tests/cluster.)"""

from __future__ import annotations

import pytest

from tests.support.manifests import MINIMAL, Rendered, render_roles

WEB = ("receiver", "frontend")


def _web_pod(rendered: Rendered, name: str) -> dict:
    return rendered.named("Deployment", name)["spec"]["template"]


def test_the_web_pods_serve_https_from_the_tls_secret(rendered):
    for name in WEB:
        pod = _web_pod(rendered, name)
        (container,) = pod["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert volumes["tls"]["secret"]["secretName"] == "kube-face-tls"
        assert volumes["tls"]["secret"]["defaultMode"] == 0o440  # the pod's fsGroup reads it
        assert mounts["tls"]["readOnly"] is True
        folder = mounts["tls"]["mountPath"]
        assert env["TLS_CERT_FILE"] == f"{folder}/tls.crt"  # the kubernetes.io/tls keys
        assert env["TLS_KEY_FILE"] == f"{folder}/tls.key"
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["scheme"] == "HTTPS", (name, probe)
        assert pod["metadata"]["annotations"]["prometheus.io/scheme"] == "https"
    # Made at deploy time from the CA on the machine running Ansible: never rendered.
    assert all(s["type"] != "kubernetes.io/tls" for s in rendered.of_kind("Secret"))


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> Rendered:
    return render_roles(tmp_path_factory.mktemp("k8s-plain"),
                        {**MINIMAL, "k8s_common_tls": False})


def test_tls_off_serves_plain_http(plain):
    for name in WEB:
        pod = _web_pod(plain, name)
        (container,) = pod["spec"]["containers"]
        assert not {"TLS_CERT_FILE", "TLS_KEY_FILE"} & {e["name"] for e in container["env"]}
        assert "tls" not in {v["name"] for v in pod["spec"]["volumes"]}
        assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTP"
