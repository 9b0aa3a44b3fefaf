"""A FastAPI app with two connection pools on the test database: a psycopg_pool pool of 2
connections behind /small and a SQLAlchemy pool of 8 behind /big; each request holds its
connection for a 50 ms query. Run under uvicorn by tests/test_resources_pools.py."""

from __future__ import annotations

import os

from fastapi import FastAPI
from psycopg_pool import ConnectionPool
from sqlalchemy import create_engine, text

from opscope.api import Instrument

DSN = os.environ["SHOP_DSN"]
small = ConnectionPool(DSN, min_size=2, max_size=2, timeout=30, name="small", open=True)
engine = create_engine(
    DSN.replace("postgresql://", "postgresql+psycopg://", 1),
    pool_size=8,
    max_overflow=0,
    pool_logging_name="big",
)

app = FastAPI()
app.add_middleware(Instrument)


@app.get("/health")
def health() -> dict[str, bool]:
    return {"ok": True}


@app.get("/small")
def use_small() -> dict[str, int]:
    with small.connection() as conn:
        conn.execute("SELECT pg_sleep(0.05)")
    return {"ok": 1}


@app.get("/big")
def use_big() -> dict[str, int]:
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_sleep(0.05)"))
    return {"ok": 1}
