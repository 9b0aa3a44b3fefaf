"""Human-readable units, the one formatter every renderer and finding text uses."""

from __future__ import annotations


def human_bytes(n: float | None) -> str:
    """1536 -> '1.5 kB'; None (unknown) -> '-'."""
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def human_ms(ms: float) -> str:
    """A duration given in milliseconds: '12.5 ms' below a second, '1.25 s' from one."""
    return f"{ms / 1000:,.2f} s" if ms >= 1000 else f"{ms:,.1f} ms"


def human_number(value: object) -> str:
    """Integers with thousands separators, floats to at most three decimals, anything else
    as text."""
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
