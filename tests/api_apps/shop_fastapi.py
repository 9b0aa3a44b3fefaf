"""A FastAPI shop on the test database, with one endpoint per problem opscope.api finds.
Run under uvicorn by tests/test_api_servers.py; the DSN comes from $SHOP_DSN."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool

from opscope.api import Instrument

DSN = os.environ["SHOP_DSN"]
pool = AsyncConnectionPool(DSN, min_size=1, max_size=4, open=False)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await pool.open()
    yield
    await pool.close()


app = FastAPI(lifespan=lifespan)
app.add_middleware(Instrument)


@app.get("/health")
async def health() -> dict[str, bool]:
    return {"ok": True}


@app.get("/customers/{customer_id}/orders")
async def customer_orders(customer_id: int) -> list[dict[str, Any]]:
    # orders.customer_id has no index: every call reads the whole table
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id, total FROM orders WHERE customer_id = %s", (customer_id,)
        )
        rows = await cur.fetchall()
    return [{"id": r[0], "total": float(r[1])} for r in rows]


@app.get("/customers")
def customers() -> list[dict[str, Any]]:
    # a sync endpoint (run in the thread pool) that opens its own connection and asks for
    # each customer's name one query at a time: N+1
    with psycopg.connect(DSN) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM customers ORDER BY id LIMIT 12")]
        out = []
        for i in ids:
            row = conn.execute("SELECT name FROM customers WHERE id = %s", (i,)).fetchone()
            out.append({"id": i, "name": row[0] if row else None})
        return out


@app.get("/catalog")
async def catalog() -> list[dict[str, Any]]:
    # no database at all: the time is in encoding a large answer
    return [
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


@app.get("/checkout")
async def checkout() -> dict[str, Any]:
    raise RuntimeError("payment service unreachable")
