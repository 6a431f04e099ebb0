"""The rendered manifests: valid for Kubernetes 1.34 (strict schemas), and right in the ways a
schema cannot see."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import kubernetes_validate
import pytest
import yaml

from kubeface.core.config import VARIABLES
from tests.support.manifests import MINIMAL, SHARED, Rendered
from tests.support.procs import ROOT, ansible_playbook

K8S_VERSION = "1.34.0"
WORKLOADS = {"Deployment", "StatefulSet", "Job", "CronJob"}
APP_IMAGES = ("kube-face:", "kube-face-face:")
CONFIG_NAMES = {v.name for v in VARIABLES}


def pod_templates(rendered: Rendered) -> Iterator[tuple[str, dict]]:
    """(kind/name, pod template) of every workload."""
    for _, doc in rendered.docs:
        if doc["kind"] == "CronJob":
            template = doc["spec"]["jobTemplate"]["spec"]["template"]
        elif doc["kind"] in WORKLOADS:
            template = doc["spec"]["template"]
        else:
            continue
        yield f"{doc['kind']}/{doc['metadata']['name']}", template


def containers(pod: dict) -> list[dict]:
    return pod["spec"].get("initContainers", []) + pod["spec"]["containers"]


def matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def pods_selected(rendered: Rendered, selector: dict) -> list[dict]:
    return [t for _, t in pod_templates(rendered) if matches(selector, t["metadata"]["labels"])]


def test_every_object_validates_strictly_against_kubernetes_1_34(rendered):
    failures = []
    for path, doc in rendered.docs:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError as exc:
            failures.append(f"{path}: no schema (removed or unknown API): {exc.message}")
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{path} {doc['kind']}/{doc['metadata']['name']}: "
                            f"{'.'.join(map(str, exc.path))}: {exc.message}")
    assert not failures, "\n".join(failures)


def test_every_component_is_rendered(rendered):
    kinds = {(d["kind"], d["metadata"]["name"]) for _, d in rendered.docs}
    for expected in [("Namespace", rendered.namespace), ("Secret", "kube-face-secret"),
                     ("StatefulSet", "mysql"), ("StatefulSet", "nsqd"),
                     ("StatefulSet", "nsqlookupd"), ("Deployment", "face"),
                     ("Deployment", "processor"), ("Deployment", "receiver"),
                     ("Deployment", "frontend"), ("CronJob", "retry"),
                     ("PodDisruptionBudget", "receiver"), ("Service", "receiver"),
                     ("Service", "frontend"), ("Service", "face"), ("Service", "mysql")]:
        assert expected in kinds, expected
    # The face service imports the known people itself: no enrolment Job to re-run.
    assert not rendered.of_kind("Job")


def test_the_data_pods_outrank_the_autoscaled_workers(rendered):
    """A deleted mysql-0 on a node the autoscalers filled preempts an added worker replica
    instead of staying Pending: the data pods run under a PriorityClass above the default 0."""
    (priority,) = rendered.of_kind("PriorityClass")
    assert priority["value"] > 0 and not priority["globalDefault"]
    assert priority["preemptionPolicy"] == "PreemptLowerPriority"
    for doc in rendered.of_kind("StatefulSet"):
        spec = doc["spec"]["template"]["spec"]
        assert spec["priorityClassName"] == priority["metadata"]["name"], doc["metadata"]["name"]
    for doc in rendered.of_kind("Deployment") + rendered.of_kind("CronJob"):
        assert "priorityClassName" not in yaml.safe_dump(doc), doc["metadata"]["name"]


def test_every_object_is_in_the_namespace_variable(rendered):
    for path, doc in rendered.docs:
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == rendered.namespace
        elif doc["kind"] == "PriorityClass":  # cluster-scoped: the name carries the namespace
            assert doc["metadata"]["name"] == f"kube-face-{rendered.namespace}-data", path
            assert "namespace" not in doc["metadata"], path
        else:
            assert doc["metadata"].get("namespace") == rendered.namespace, path


def test_dns_names_use_the_namespace_variable(rendered):
    """DNS names follow the namespace variable, so a deployment works in any namespace."""
    text = "\n".join(yaml.safe_dump(d) for _, d in rendered.docs)
    names = re.findall(r"([a-z0-9-]+)\.svc\b", text)
    assert names, "no service DNS names found"
    assert set(names) == {rendered.namespace}, set(names)


def test_selectors_match_their_pod_template_labels(rendered):
    for name, template in pod_templates(rendered):
        kind, obj_name = name.split("/")
        doc = rendered.named(kind, obj_name)
        selector = doc["spec"].get("selector", {}).get("matchLabels")
        if kind in {"Deployment", "StatefulSet"}:
            assert selector and matches(selector, template["metadata"]["labels"]), name


def test_services_select_pods_that_have_their_target_ports(rendered):
    for service in rendered.of_kind("Service"):
        pods = pods_selected(rendered, service["spec"]["selector"])
        assert pods, f"Service {service['metadata']['name']} selects no pod"
        for pod in pods:
            ports = {p.get("name"): p["containerPort"] for c in pod["spec"]["containers"]
                     for p in c.get("ports", [])}
            for port in service["spec"]["ports"]:
                target = port.get("targetPort", port["port"])
                assert target in ports or target in ports.values(), (
                    service["metadata"]["name"], target)


def metrics_ports(rendered) -> set[int]:
    return {port["containerPort"] for _, template in pod_templates(rendered)
            for container in containers(template) for port in container.get("ports", [])
            if port["name"] == "metrics"}


def test_pdbs_networkpolicies_and_autoscalers_point_at_real_workloads(rendered):
    for pdb in rendered.of_kind("PodDisruptionBudget"):
        assert pods_selected(rendered, pdb["spec"]["selector"]["matchLabels"])
    for policy in rendered.of_kind("NetworkPolicy"):
        assert pods_selected(rendered, policy["spec"]["podSelector"]["matchLabels"])
        for rule in policy["spec"]["ingress"]:
            if "from" not in rule:  # open to every source (Prometheus): a metrics port only
                assert {p["port"] for p in rule["ports"]} <= metrics_ports(rendered), policy
            for peer in rule.get("from", []):
                assert pods_selected(rendered, peer["podSelector"]["matchLabels"]), policy
    for hpa in rendered.of_kind("HorizontalPodAutoscaler"):
        target = rendered.named(hpa["spec"]["scaleTargetRef"]["kind"],
                                hpa["spec"]["scaleTargetRef"]["name"])
        # A replicas field would be reset by every apply, fighting the autoscaler.
        assert "replicas" not in target["spec"], hpa["metadata"]["name"]
        for container in target["spec"]["template"]["spec"]["containers"]:
            assert container["resources"]["requests"]["cpu"]


def test_probe_ports_exist_on_the_container(rendered):
    probed = 0
    for name, template in pod_templates(rendered):
        for container in containers(template):
            ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
            for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
                probe = container.get(kind)
                if not probe:
                    continue
                action = probe.get("httpGet") or probe.get("tcpSocket") or probe.get("grpc")
                assert action, (name, kind, "exec probes are not used")
                port = action["port"]
                assert port in ports or port in ports.values(), (name, container["name"], kind)
                probed += 1
    assert probed >= 10


def test_every_secret_key_referenced_exists(rendered):
    secrets = {s["metadata"]["name"]: set(s.get("stringData", {})) | set(s.get("data", {}))
               for s in rendered.of_kind("Secret")}
    refs = 0
    for name, template in pod_templates(rendered):
        for container in containers(template):
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets.get(ref["name"], set()), (name, env["name"])
                    refs += 1
    assert refs >= 8


CREDENTIALS = {"API_TOKENS": "receiver", "FRONTEND_USERS": "frontend",
               "FRONTEND_SESSION_KEY": "frontend"}


def test_passwords_only_come_from_the_secret(rendered):
    given = set()
    for name, template in pod_templates(rendered):
        for container in containers(template):
            for env in container.get("env", []):
                if env["name"] in CREDENTIALS:
                    given.add((env["name"], name.split("/")[-1]))
                if "PASSWORD" in env["name"] or env["name"] in CREDENTIALS:
                    assert "value" not in env and "secretKeyRef" in env["valueFrom"], (
                        name, env["name"])
            line = " ".join(container.get("command", []) + container.get("args", []))
            assert "password" not in line.lower(), (name, container["name"])
    assert given == set(CREDENTIALS.items()), given  # the receiver's tokens, the frontend's users


def test_the_rendered_secret_holds_no_generated_password(rendered):
    (secret,) = rendered.of_kind("Secret")
    for key, value in secret["stringData"].items():
        assert value.endswith("placeholder-generated-at-deploy"), key


def test_no_host_port_and_every_container_has_requests_and_limits(rendered):
    for name, template in pod_templates(rendered):
        assert not template["spec"].get("hostNetwork"), name
        for container in containers(template):
            for port in container.get("ports", []):
                assert "hostPort" not in port, (name, container["name"])
            resources = container.get("resources", {})
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(part, {})), (
                    name, container["name"], part)


def test_pods_run_as_non_root_without_privilege(rendered):
    for name, template in pod_templates(rendered):
        pod_context = template["spec"]["securityContext"]
        assert pod_context["runAsNonRoot"] is True, name
        assert pod_context["runAsUser"] != 0, name
        assert pod_context["seccompProfile"]["type"] == "RuntimeDefault", name
        assert template["spec"]["automountServiceAccountToken"] is False, name
        for container in containers(template):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, (name, container["name"])
            assert context["capabilities"]["drop"] == ["ALL"], (name, container["name"])
            assert context["readOnlyRootFilesystem"] is True, (name, container["name"])
            assert not context.get("privileged"), (name, container["name"])


def test_app_containers_use_only_the_variables_kubeface_reads(rendered):
    """A misspelt variable would be silently ignored and the default used instead."""
    seen = 0
    for name, template in pod_templates(rendered):
        for container in containers(template):
            if not container["image"].rsplit("/", 1)[-1].startswith(APP_IMAGES):
                continue
            names = {e["name"] for e in container.get("env", [])}
            assert names <= CONFIG_NAMES, (name, container["name"], names - CONFIG_NAMES)
            assert container["command"][0] == "kubeface"
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            if env.get("BIND_ADDRESS") is not None:
                assert env["BIND_ADDRESS"] == "0.0.0.0"
            seen += 1
    assert seen >= 7


def test_the_receiver_rolls_without_losing_capacity(rendered):
    deployment = rendered.named("Deployment", "receiver")
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1,
                                                                "maxUnavailable": 0}
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    # Readiness is the pod's own (it serves), not the shared database's: with MySQL away the
    # replicas stay in the Service and answer 503, rather than all leaving it at once.
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["lifecycle"]["preStop"]["sleep"]["seconds"] > 0
    assert rendered.named("Service", "receiver")["spec"]["type"] == "NodePort"
    assert rendered.named("Service", "frontend")["spec"]["type"] == "NodePort"


def test_the_face_service_has_native_grpc_probes(rendered):
    deployment = rendered.named("Deployment", "face")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"]["grpc"]["service"] == "facerecog.Identity"
    assert container["livenessProbe"]["grpc"]["service"] == ""
    assert container["startupProbe"]["grpc"]["port"] == SHARED["kube_face_face_port"]


def test_nsqd_broadcasts_a_name_the_processors_can_resolve(rendered):
    nsqd = rendered.named("StatefulSet", "nsqd")
    (container,) = nsqd["spec"]["template"]["spec"]["containers"]
    broadcast = next(a for a in container["args"] if a.startswith("--broadcast-address="))
    governing = nsqd["spec"]["serviceName"]
    assert rendered.named("Service", governing)["spec"]["clusterIP"] == "None"
    assert broadcast == (f"--broadcast-address=$(POD_NAME).{governing}.{rendered.namespace}"
                         ".svc.cluster.local")
    assert {e["name"] for e in container["env"]} == {"POD_NAME"}
    assert nsqd["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    lookupds = rendered.named("StatefulSet", "nsqlookupd")["spec"]["replicas"]
    registered = [a for a in container["args"] if a.startswith("--lookupd-tcp-address=")]
    assert registered == [
        f"--lookupd-tcp-address=nsqlookupd-{i}.nsqlookupd.{rendered.namespace}"
        f".svc.cluster.local:{SHARED['kube_face_nsqlookupd_tcp_port']}"
        for i in range(lookupds)]


def test_the_retry_job_is_a_batch_v1_cronjob(rendered):
    (cronjob,) = rendered.of_kind("CronJob")
    assert cronjob["apiVersion"] == "batch/v1"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"


def peer_names(rendered, rule: dict) -> set[str]:
    """The app names of the pods a NetworkPolicy rule admits."""
    return {pod["metadata"]["labels"]["app.kubernetes.io/name"]
            for peer in rule["from"]
            for pod in pods_selected(rendered, peer["podSelector"]["matchLabels"])}


def test_mysql_and_the_face_service_are_reachable_only_from_their_clients(rendered):
    policies = {p["metadata"]["name"]: p for p in rendered.of_kind("NetworkPolicy")}
    if not policies:
        pytest.skip("k8s_common_network_policies is false in this variable set")
    (mysql_rule,) = policies["mysql"]["spec"]["ingress"]
    # The face service reads and imports the known people in the database.
    assert peer_names(rendered, mysql_rule) == {"receiver", "processor", "frontend", "retry",
                                                "face"}
    grpc_rules = [r for r in policies["face"]["spec"]["ingress"] if "from" in r]
    assert len(grpc_rules) == 1
    assert [p["port"] for p in grpc_rules[0]["ports"]] == [SHARED["kube_face_face_port"]]
    # The receiver and the frontend have people's photos encoded.
    assert peer_names(rendered, grpc_rules[0]) == {"processor", "receiver", "frontend"}


def test_nsq_is_reachable_only_from_its_clients(rendered):
    policies = {p["metadata"]["name"]: p for p in rendered.of_kind("NetworkPolicy")}
    if not policies:
        pytest.skip("k8s_common_network_policies is false in this variable set")
    (nsqd_rule,) = policies["nsqd"]["spec"]["ingress"]
    # Publishers (the frontend publishes uploads, its dashboard reads /stats) and consumers.
    assert peer_names(rendered, nsqd_rule) == {"receiver", "frontend", "retry", "processor"}
    (lookupd_rule,) = policies["nsqlookupd"]["spec"]["ingress"]
    # nsqd registers with nsqlookupd; the processors look nsqd up there.
    assert peer_names(rendered, lookupd_rule) == {"nsqd", "processor"}


def env_of(container: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_the_face_service_uses_the_database_for_known_people(rendered):
    face = rendered.named("Deployment", "face")["spec"]["template"]
    assert face["metadata"]["labels"]["kube-face-db-client"] == "true"
    (container,) = face["spec"]["containers"]
    env = env_of(container)
    assert env["MYSQL_USERPASSWORD"] == {"secretKeyRef": {"name": "kube-face-secret",
                                                          "key": "mysql-userpassword"}}
    assert env["MYSQL_CONNECTION"] == f"mysql.{rendered.namespace}.svc.cluster.local"
    assert env["MYSQL_PORT"] == str(SHARED["kube_face_mysql_port"])
    assert env["GRPC_PORT"] == str(SHARED["kube_face_face_port"])
    assert env["KNOWN_PEOPLE"] == "/data/known_people"
    assert len(container["env"]) == len(env), "a variable is set twice"
    # The schema is applied before the service imports into it, from the face image itself.
    (migrate,) = face["spec"]["initContainers"]
    assert migrate["command"] == ["kubeface", "migrate"]
    assert migrate["image"] == container["image"]


def test_the_receiver_and_the_frontend_reach_the_face_service(rendered):
    face_port = SHARED["kube_face_face_port"]
    service = rendered.named("Service", "face")
    assert face_port in {p["port"] for p in service["spec"]["ports"]}
    for name in ("receiver", "frontend"):
        (container,) = rendered.named("Deployment", name)["spec"]["template"]["spec"][
            "containers"]
        env = env_of(container)
        assert env["GRPC_ADDRESS"] == (
            f"face.{rendered.namespace}.svc.cluster.local:{face_port}"), name
        assert len(container["env"]) == len(env), (name, "a variable is set twice")


def image_mounts(template: dict) -> dict[str, tuple[dict, dict, str]]:
    """Per container and image folder: (mount, volume, the container's UNKNOWN_PEOPLE)."""
    volumes = {v["name"]: v for v in template["spec"].get("volumes", [])}
    found = {}
    for container in containers(template):
        for mount in container.get("volumeMounts", []):
            if mount["name"] in ("known-people", "unknown-people"):
                found[f"{container['name']}/{mount['name']}"] = (
                    mount, volumes[mount["name"]], env_of(container).get("UNKNOWN_PEOPLE"))
    return found


def writable(mount: dict, volume: dict) -> bool:
    return not mount.get("readOnly") and not volume.get("persistentVolumeClaim", {}).get(
        "readOnly")


def test_only_the_receiver_and_the_frontend_write_the_unknown_images(rendered):
    """They store uploads and people's photos under UNKNOWN_PEOPLE; nothing else writes there,
    and nothing writes the known folder."""
    writers = set()
    for name, template in pod_templates(rendered):
        for key, (mount, volume, unknown_root) in image_mounts(template).items():
            if writable(mount, volume):
                writers.add(f"{name}/{key}")
                assert mount["mountPath"] == unknown_root, (name, key)
            if "persistentVolumeClaim" not in volume:
                folder = mount["name"].replace("-", "_")
                assert volume["hostPath"]["path"].endswith(f"/{folder}"), (name, key)
    assert writers == {"Deployment/receiver/receiver/unknown-people",
                       "Deployment/frontend/frontend/unknown-people"}
    # A writable folder is mounted with the pod still restricted: non-root, and a claim made
    # writable for the pods' group by fsGroup.
    for name in ("receiver", "frontend"):
        context = rendered.named("Deployment", name)["spec"]["template"]["spec"][
            "securityContext"]
        assert context["runAsNonRoot"] is True and context["fsGroup"] == context["runAsGroup"]


def test_roles_take_their_own_inputs_and_the_playbooks_pass_the_settings_in():
    """A role reads only its own inputs (the shared ones are k8s_common's), never a kube_face_*
    setting; the playbooks map the settings onto inputs k8s_common has, so a misspelt name
    cannot be ignored without a word."""
    readers = [f"{path.relative_to(ROOT)}: {line.strip()}"
               for folder in ("defaults", "vars", "tasks", "templates")
               for path in ROOT.glob(f"roles/k8s_*/{folder}/*") if path.is_file()
               for line in path.read_text().splitlines()
               if re.search(r"\bkube_face_\w+", line) and not line.lstrip().startswith("#")]
    assert readers == []
    specs = yaml.safe_load((ROOT / "roles/k8s_common/meta/argument_specs.yml").read_text())
    shared = set(specs["argument_specs"]["main"]["options"])
    mapping = yaml.safe_load((ROOT / "playbooks/vars/kubernetes.yml").read_text())
    assert set(mapping) <= shared, set(mapping) - shared
    assert all(re.fullmatch(r"\{\{ kube_face_\w+ \}\}", value) for value in mapping.values())
    # group_vars hold no copy of a role's default: only project-wide kube_face_* settings.
    settings = yaml.safe_load((ROOT / "playbooks/group_vars/all/kubernetes.yml").read_text())
    assert all(name.startswith("kube_face_") for name in settings), settings


@pytest.mark.parametrize(("bad", "refusal"), [
    ({"k8s_receiver_replicas": "two"},
     "k8s_receiver_replicas' is of type str and we were unable to convert to int"),
    ({"k8s_common_images_volume_type": "nfs"},
     "value of k8s_common_images_volume_type must be one of: hostPath, pvc, got: nfs"),
])
def test_a_bad_input_is_refused_by_the_roles_argument_specs(tmp_path, bad, refusal):
    (tmp_path / "play.yml").write_text(
        "- name: Bad input\n  hosts: localhost\n  gather_facts: false\n"
        "  roles: [k8s_receiver]\n")
    variables = {**MINIMAL, **bad, "k8s_common_render_only": True,
                 "k8s_common_manifest_dir": str(tmp_path / "out")}
    (tmp_path / "vars.json").write_text(json.dumps(variables))
    result = ansible_playbook("play.yml", "-i", "localhost,", "-c", "local", "-e", "@vars.json",
                              cwd=tmp_path)
    assert result.returncode != 0
    assert refusal in result.stdout
    assert not (tmp_path / "out").exists()
