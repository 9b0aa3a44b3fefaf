"""The same shop in Flask, run under gunicorn with two workers by tests/test_api_servers.py.
The slow endpoint goes through SQLAlchemy (its psycopg dialect); the DSN comes from
$SHOP_DSN."""

from __future__ import annotations

import os
from typing import Any

import psycopg
from flask import Flask, jsonify
from sqlalchemy import create_engine, text

from opscope.api import InstrumentWSGI

DSN = os.environ["SHOP_DSN"]
engine = create_engine(DSN.replace("postgresql://", "postgresql+psycopg://", 1), pool_size=2)

app = Flask(__name__)
app.wsgi_app = InstrumentWSGI(app.wsgi_app)  # type: ignore[method-assign]


@app.get("/health")
def health() -> Any:
    return jsonify(ok=True)


@app.get("/customers/<int:customer_id>/orders")
def customer_orders(customer_id: int) -> Any:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT id, total FROM orders WHERE customer_id = :c"), {"c": customer_id}
        ).all()
    return jsonify([{"id": r[0], "total": float(r[1])} for r in rows])


@app.get("/customers")
def customers() -> Any:
    with psycopg.connect(DSN) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM customers ORDER BY id LIMIT 12")]
        out = []
        for i in ids:
            row = conn.execute("SELECT name FROM customers WHERE id = %s", (i,)).fetchone()
            out.append({"id": i, "name": row[0] if row else None})
    return jsonify(out)


@app.get("/catalog")
def catalog() -> Any:
    return jsonify(
        [
            {
                "sku": f"sku-{i}",
                "name": f"item {i}",
                "tags": ["a", "b", "c"],
                "price": i * 0.5,
                "stock": {"warehouse": i % 7, "store": i % 3},
                "dims": [i, i + 1, i + 2],
            }
            for i in range(6000)
        ]
    )


@app.get("/checkout")
def checkout() -> Any:
    raise RuntimeError("payment service unreachable")
