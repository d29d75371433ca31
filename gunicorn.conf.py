# Read by gunicorn automatically when started from this folder, so that
# `gunicorn -w 1 -b 0.0.0.0:8000 slm_api.app:app` gets threads (a long stream never blocks /health).
from slm_api.config import Settings
from slm_api.gunicorn_config import options

_settings = Settings.from_env()
for _key, _value in options(_settings).items():
    globals()[_key] = _value
