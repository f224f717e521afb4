"""ASGI entry for `ledgerllm serve` (uvicorn factory): settings come from the environment."""

from litestar import Litestar

from api.app import create_app
from infrastructure.settings import load_settings


def app() -> Litestar:
    return create_app(load_settings())
