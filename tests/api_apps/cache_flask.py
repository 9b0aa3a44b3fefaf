"""The cache test app in Flask, run under gunicorn (threaded workers) by
tests/test_cache_servers.py; the environment is read as cache_fastapi.py reads it."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from flask import Flask, jsonify, request

from opscope.api import CacheRule, InstrumentWSGI, MemoryCache, RedisCache, ResponseCacheWSGI
from opscope.api.cache.store import Backend

CALLS = os.environ["CALLS_FILE"]
SLOW_S = float(os.environ.get("SLOW_S", "0.3"))
# as an app would: opscope's own log lines (the cache backend's outages) go to stderr
logging.basicConfig(level=logging.WARNING)


def called(name: str) -> None:
    fd = os.open(CALLS, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{name} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


def backend() -> Backend:
    if os.environ.get("CACHE_BACKEND") == "redis":
        return RedisCache(os.environ["REDIS_URL"], retry_s=0.5)
    return MemoryCache()


RULES: dict[str, CacheRule | float] = {
    "/products/<int:product_id>": CacheRule(ttl=60, tags=("product:{product_id}", "products")),
    "/me": 60,
    "/greeting": CacheRule(ttl=60, vary=("accept-language",)),
    "/short": 1,
}

app = Flask(__name__)
app.wsgi_app = ResponseCacheWSGI(  # type: ignore[method-assign]
    app.wsgi_app, rules=RULES, backend=backend(), lock_timeout_s=5
)
app.wsgi_app = InstrumentWSGI(app.wsgi_app)  # type: ignore[method-assign]
inner = app.wsgi_app


def served_by(environ: dict[str, Any], start_response: Any) -> Any:
    # outermost: on hits too, says which worker answered
    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return start_response(status, [*headers, ("X-Served-By", str(os.getpid()))], exc_info)

    return inner(environ, start)


app.wsgi_app = served_by  # type: ignore[method-assign]


@app.get("/health")
def health() -> Any:
    return jsonify(ok=True)


@app.get("/products/<int:product_id>")
def product(product_id: int) -> Any:
    called(f"product:{product_id}")
    time.sleep(SLOW_S)
    return jsonify(id=product_id, name=f"product {product_id}", price=product_id * 1.5)


@app.get("/me")
def me() -> Any:
    called("me")
    return jsonify(user=request.headers.get("Authorization", "anonymous"))


@app.get("/greeting")
def greeting() -> Any:
    called("greeting")
    text = "bonjour" if request.headers.get("Accept-Language", "").startswith("fr") else "hello"
    return text, 200, {"Content-Type": "text/plain", "Vary": "Accept-Language"}


@app.get("/short")
def short() -> Any:
    called("short")
    return jsonify(at=time.time())
