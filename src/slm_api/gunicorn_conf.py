"""A gunicorn config module: the settings `slm-api serve` gives gunicorn (the probe-lane worker,
N_PARALLEL + MAX_QUEUE + 32 threads, no request timeout, one worker only), read from the
environment and .env when gunicorn loads it. The checkout's and the image's gunicorn.conf.py
(which gunicorn reads from the working directory) is this module; anywhere else:
`gunicorn -c python:slm_api.gunicorn_conf -w 1 -b 0.0.0.0:8000 slm_api.app:app`."""

from slm_api.server.options import from_env

globals().update(from_env())
