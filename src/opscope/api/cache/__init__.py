"""The response cache: `ResponseCache` (ASGI) and `ResponseCacheWSGI`, their rules
(`CacheRule`) and backends (`MemoryCache`, `RedisCache`). docs/cache.md tells how it works."""
