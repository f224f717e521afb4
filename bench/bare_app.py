"""The floor for `GET /api/ping`: a bare Litestar app answering the same JSON, served by uvicorn
with the settings `ledgerllm serve` uses, in the same venv. `bench/auth_throughput.py` runs it
beside the real server so the two are measured in one run.

    python bench/bare_app.py PORT
"""

from __future__ import annotations

import sys

import msgspec
import uvicorn
from litestar import Litestar, get


class Online(msgspec.Struct):
    online: bool


@get("/api/ping", sync_to_thread=False)
async def ping() -> Online:
    return Online(True)


app = Litestar([ping], openapi_config=None)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False, lifespan="on")
