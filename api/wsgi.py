"""The WSGI entry point gunicorn loads in each worker."""

from api import create_app

app = create_app()
