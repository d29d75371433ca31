"""How gunicorn serves the app, in one place:

- `options.py`: the settings `slm-api serve` gives gunicorn (one worker, its threads, no request
  timeout), and `from_env()` for the config module;
- `worker.py`: the worker class (a probe lane for /health, /ready and /metrics; admission at the
  door; a drain on SIGTERM);
- `intake.py`: a request's head and body gathered on the worker's selector, with deadlines.

The config module gunicorn loads is `slm_api.gunicorn_conf` (`-c python:slm_api.gunicorn_conf`);
the checkout's and the image's `gunicorn.conf.py` imports it, so a bare `gunicorn` in either
serves the same way.
"""
