"""The files for running replicas, checked offline: Kubernetes manifests against the API schemas
(kubernetes-validate), the compose file's shape, and nginx's own syntax check of the config."""

from __future__ import annotations

import subprocess
from dataclasses import fields
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from support.cluster import nginx_conf
from support.parts import need

from slm_api.app import create_app
from slm_api.config import Settings

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
SETTINGS = {f.name.upper() for f in fields(Settings)}


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _resources() -> list[tuple[str, dict]]:
    return [(f"{p.name}:{d['kind']}/{d['metadata']['name']}", d)
            for p in sorted(K8S.glob("*.yaml")) if p.name != "kustomization.yaml"
            for d in _docs(p)]


@pytest.mark.parametrize("name,resource", _resources(), ids=lambda v: v if isinstance(v, str)
                         else "")
def test_manifest_is_valid_kubernetes(name, resource):
    kubernetes_validate.validate(resource, kubernetes_validate.latest_version(), strict=True)


def test_kustomization_lists_every_manifest():
    listed = set(_docs(K8S / "kustomization.yaml")[0]["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}


def test_deployment_probes_settings_and_volumes(tmp_path):
    kinds = {d["kind"] + "/" + d["metadata"]["name"]: d for _, d in _resources()}
    pod = kinds["Deployment/slm-api"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    # Probes hit routes the server really has.
    routes = {r.rule for r in create_app(Settings(models_dir=tmp_path), load_model=False)
              .url_map.iter_rules()}
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert {"/health", "/ready"} <= routes
    # Every setting in the ConfigMap and Secret is one the server reads.
    config = kinds["ConfigMap/slm-api"]["data"]
    secret = kinds["Secret/slm-api"]["stringData"]
    assert set(config) | set(secret) <= SETTINGS
    assert config["RATE_LIMIT_STORAGE_URI"].startswith("redis://" + "slm-redis")
    assert "Service/slm-redis" in kinds
    Settings.from_env({k: v for k, v in config.items()}, dotenv_path=None)  # parses and validates
    models = next(m for m in container["volumeMounts"] if m["mountPath"] == "/models")
    assert models["readOnly"] is True
    assert container["resources"]["limits"]["memory"]


def test_compose_scale_file():
    compose = yaml.safe_load((REPO / "docker-compose.scale.yml").read_text())
    services = compose["services"]
    replicas = [s for name, s in services.items() if name.startswith("replica")]
    assert len(replicas) == 3 and {"redis", "nginx"} <= set(services)
    site = (REPO / "deploy" / "nginx" / "slm-api.conf").read_text()
    for name in ("replica1", "replica2", "replica3"):
        assert f"server {name}:8000" in site
    for replica in replicas:
        assert "./models:/models:ro" in replica["volumes"]
        assert replica["environment"]["RATE_LIMIT_STORAGE_URI"] == "redis://redis:6379/0"
        assert replica["healthcheck"]["test"][-1].endswith("/ready")
    assert any("slm-api.conf" in v for v in services["nginx"]["volumes"])


def test_nginx_accepts_the_config(tmp_path):
    nginx = need("nginx", "nginx not installed (Debian package nginx; scripts/system-deps.sh)")
    conf = tmp_path / "nginx.conf"
    conf.write_text(nginx_conf(tmp_path, 18080, [18001, 18002, 18003]))
    out = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(conf), "-e",
                          str(tmp_path / "error.log")], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    for needed in ("proxy_buffering off;", "hash $slm_affinity consistent;",
                   "proxy_set_header X-Request-ID", "$proxy_add_x_forwarded_for"):
        assert needed in conf.read_text()
