"""The test client of the web app."""

from fastapi.testclient import TestClient

from ocrdet.serve.app import create_app
from ocrdet.serve.workspace import Workspace


def local_client(workspace: Workspace) -> TestClient:
    """A client of the app over ``workspace`` calling it as a browser on this machine would (the app answers
    loopback host names only)."""
    return TestClient(create_app(workspace), base_url="http://127.0.0.1:8000")
