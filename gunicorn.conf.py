"""Read by gunicorn from the working directory (this checkout, the Docker image's /app), so
`gunicorn -w 1 -b 0.0.0.0:8000 slm_api.app:app` serves as `slm-api serve` does. The settings
are the package's (src/slm_api/gunicorn_conf.py), so an install without this file gets the same
ones with `-c python:slm_api.gunicorn_conf`."""

from slm_api.gunicorn_conf import *  # noqa: F403
