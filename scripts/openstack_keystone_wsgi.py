"""Keystone's WSGI application, for gunicorn (`scripts/openstack.sh`).

oslo.config reads the process's arguments as Keystone's own, and refuses
gunicorn's: they are emptied before Keystone is imported.
"""
import sys

sys.argv = sys.argv[:1]

from keystone.wsgi.api import application  # noqa: E402,F401
