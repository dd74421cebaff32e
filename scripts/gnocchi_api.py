"""Serves Gnocchi's REST API for Pollen's tests: `python gnocchi_api.py CONF PORT`.

Gnocchi's own `gnocchi-api` needs uwsgi; the test tier only needs the WSGI
application on loopback, so Werkzeug's threaded server runs it.
"""
import sys

from gnocchi import service
from gnocchi.rest import app
from werkzeug.serving import run_simple

conf = service.prepare_service(args=["--config-file", sys.argv[1]])
run_simple("127.0.0.1", int(sys.argv[2]), app.load_app(conf), threaded=True)
