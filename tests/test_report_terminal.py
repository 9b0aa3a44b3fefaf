"""The terminal renderer's pieces with plain inputs."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from opscope.report.terminal import label_grid


def _shown(rows: list[tuple[str, str]]) -> str:
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(label_grid(rows))
    return out.getvalue()


def test_labels_and_values_are_text_not_markup() -> None:
    # a label may carry a name read from the watched system: brackets are shown, not obeyed
    shown = _shown([("pool [bold]main[/bold]", "[red]3[/red] waiting"), ("requests", "12")])
    lines = [line.rstrip() for line in shown.splitlines()]
    assert lines == ["pool [bold]main[/bold]  [red]3[/red] waiting", "requests                12"]


@given(
    st.lists(
        st.tuples(
            st.text(alphabet="ab[]/=", min_size=1, max_size=12),
            st.text(alphabet="xy[]/", min_size=1, max_size=12),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_every_label_and_value_is_shown_whole(rows: list[tuple[str, str]]) -> None:
    shown = _shown(rows).splitlines()
    assert len(shown) == len(rows)
    for line, (label, value) in zip(shown, rows, strict=True):
        assert line.startswith(label) and line.rstrip().endswith(value)
