"""`pip install .` into a clean venv outside the checkout, then `slm-api serve` with only
MODELS_DIR set: the package writes both embedded models and serves, from its installed files
alone (no PYTHONPATH, no .env, no gunicorn.conf.py, a working directory of its own).

The install is real and non-editable (a wheel built from a copy of the sources the Dockerfile
copies), so a file missing from the package data fails here. Its dependencies are the shared
venv's, made visible by a .pth line: downloading and compiling them (llama-cpp-python builds for
minutes) would test pip, not this package. The whole install, dependencies included, measured
once by hand: see the README's "Install" figures."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import requests
from test_deploy import REPO, free_port


def _copy_sources(dest: Path) -> Path:
    """What the Dockerfile's build stage copies before `pip install .`, and nothing else."""
    from test_dockerfile import stages

    src = dest / "src-copy"
    src.mkdir()
    copied = [shlex.split(args)[:-1] for word, args in stages()[0] if word == "COPY"]
    names = [name for sources in copied for name in sources]
    assert {"pyproject.toml", "src"} <= set(names), names
    for name in names:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(REPO / name, src / name)
    return src


def _clean_venv(dest: Path) -> Path:
    venv = dest / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = Path(subprocess.run([str(venv / "bin" / "python"), "-c", code],
                                  capture_output=True, text=True, check=True).stdout.strip())
    # A plain path line: the shared site-packages' own .pth files (the editable install of the
    # checkout among them) are not run, so `slm_api` can only come from this venv.
    (purelib / "zz_shared_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def test_pip_install_then_serve_with_only_models_dir(tmp_path: Path):
    sources = _copy_sources(tmp_path)
    venv = _clean_venv(tmp_path)
    started = time.monotonic()
    # The build runs isolated, as a user's does (setuptools and wheel from pip's index/cache).
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-deps", str(sources)],
                   check=True, timeout=300)
    print(f"pip install . (no deps): {time.monotonic() - started:.1f} s")
    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import slm_api; print(slm_api.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path,
                           env={"PATH": os.environ["PATH"]}).stdout.strip()
    assert Path(where).is_relative_to(venv), where
    # What the package installs besides its modules: both commands, the gunicorn config module
    # (for `gunicorn -c python:slm_api.gunicorn_conf`), the page and ReDoc's vendored bundle.
    bare = {"PATH": os.environ["PATH"]}
    for cmd in ([str(venv / "bin" / "slm-api"), "--help"],
                [str(venv / "bin" / "python"), "-m", "slm_api", "--help"]):
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=bare)
        assert out.returncode == 0 and "serve" in out.stdout, (cmd, out.stderr)
    conf = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import slm_api.gunicorn_conf as c; print(c.worker_class, c.wsgi_app)"],
                          capture_output=True, text=True, cwd=tmp_path, env=bare)
    assert conf.stdout.split() == ["slm_api.server.worker.ProbeLaneWorker", "slm_api.app:app"], conf
    package = Path(where).parent
    for data in ("static/redoc/redoc.standalone.js", "static/redoc/redoc.standalone.js.LICENSE.txt",
                 "web/static/index.html"):
        assert (package / data).is_file(), data

    models = tmp_path / "models"
    home = tmp_path / "run"
    home.mkdir()
    port = free_port()
    # Only MODELS_DIR (and what any process has); --host/--port keep it on loopback and off
    # a port another process may hold. pip's own config (a local index) still applies.
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(home)),
           "MODELS_DIR": str(models)}
    for name in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CERT"):
        if name in os.environ:
            env[name] = os.environ[name]
    proc = subprocess.Popen([str(venv / "bin" / "slm-api"), "serve", "--host", "127.0.0.1",
                             "--port", str(port)], cwd=home, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, "slm-api serve exited while starting"
            assert time.monotonic() < deadline, "no /health 200 in 240 s"
            try:
                if requests.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        print(f"first /health 200 (models written, model loaded): "
              f"{time.monotonic() - started:.1f} s after pip started")

        from slm_api.default_model import EMBEDDED_MODELS

        assert sorted(p.name for p in models.iterdir()) == sorted(EMBEDDED_MODELS)
        chat = requests.post(f"{url}/v1/chat/completions", timeout=120, json={
            "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4})
        assert chat.status_code == 200, chat.text
        assert chat.json()["choices"][0]["message"]["role"] == "assistant"
        # Package data: the web page and the API reference's assets come from the install.
        page = requests.get(f"{url}/", timeout=30)
        assert page.status_code == 200 and "<html" in page.text.lower()
        for path in ("/web/app.js", "/web/style.css", "/docs/redoc/redoc.standalone.js"):
            assert requests.get(url + path, timeout=30).status_code == 200, path
    finally:
        proc.terminate()
        proc.wait(timeout=60)
