"""`opscope cache invalidate`: drop entries of an app's response cache (its Redis backend) by
tag or path, as the app itself would with `RedisCache.invalidate`."""

from __future__ import annotations

from typing import Annotated

import typer

from opscope.api.settings import apis
from opscope.cli_common import ConfigOpt, fail, load_or_fail


def invalidate_command(
    target: Annotated[
        str | None,
        typer.Argument(
            help="An API named in the config whose `cache:` says where its Redis is.",
            show_default=False,
        ),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option(
            "--tag", help="Drop the entries with this tag (repeatable).", show_default=False
        ),
    ] = None,
    path: Annotated[
        list[str] | None,
        typer.Option(
            "--path",
            help="Drop the entries of this path, every query and variant (with ?query: that "
            "query only). Repeatable.",
            show_default=False,
        ),
    ] = None,
    redis_url: Annotated[
        str | None,
        typer.Option(
            "--redis-url",
            help="The cache's Redis (instead of a configured API).",
            show_default=False,
        ),
    ] = None,
    prefix: Annotated[
        str | None,
        typer.Option(
            "--prefix",
            help="The key prefix the app's RedisCache uses (default opscope:cache:).",
            show_default=False,
        ),
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Drop entries of a response cache by tag or path."""
    from opscope.api.cache.redisstore import RedisCache
    from opscope.api.cache.store import BackendUnavailable

    cfg = load_or_fail(config)
    if not tag and not path:
        fail("give --tag or --path (what to invalidate)")
    for p in path or []:
        if not p.startswith("/"):
            fail(f"--path {p!r} does not start with /")
    url, key_prefix = redis_url, prefix
    if target is not None:
        found = apis(cfg).get(target)
        if found is None:
            where = f" in {cfg.source}" if cfg.source else ""
            fail(f"no API named {target!r}{where}")
        if found.cache is None:
            fail(f"the API {target!r} has no cache: set apis.{target}.cache.redis_url")
        url = url or found.cache.redis_url
        key_prefix = key_prefix or found.cache.prefix
    if url is None:
        fail("give --redis-url, or the name of an API whose cache is configured")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        fail("--redis-url must be a redis://, rediss:// or unix:// URL")
    try:
        cache = RedisCache(url, prefix=key_prefix or "opscope:cache:", timeout_s=5.0)
        dropped = cache.invalidate(tags=tag or (), paths=path or ())
    except BackendUnavailable as exc:
        fail(str(exc))
    except ValueError as exc:
        fail(f"--redis-url: {exc}")
    what = ", ".join([*(f"tag {t}" for t in tag or ()), *(f"path {p}" for p in path or ())])
    noun = "entry" if dropped == 1 else "entries"
    typer.echo(f"invalidated {dropped} {noun} ({what}) in redis at {cache.shown}")
