"""Drawing ``yieldstream plot``'s figures with matplotlib, off screen.

Figures are made with :class:`matplotlib.figure.Figure` on an Agg canvas, never
through pyplot: no GUI backend, no global figure state. Imported only by the ``plot``
command, so the CLI starts without matplotlib. SVG keeps its text as text
(``svg.fonttype = none``): product names stay searchable in the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, PercentFormatter

from yieldstream.plot import Bar, Line

WIDTH, HEIGHT, DPI = 11.0, 7.0, 100  # 1100 x 700 pixels
_MARKERS_UP_TO = 40  # points in a line: fewer get a marker, so a lone point shows


def _text(value: str) -> str:
    """Data as literal text: ``$`` would start mathtext, a leading ``_`` hide a legend entry."""
    escaped = value.replace("$", r"\$")
    return f" {escaped}" if escaped.startswith("_") else escaped


def usd(value: float, _pos: object = None) -> str:
    """``$1.2B``, ``$340M``, ``$12k``: an axis tick or an annotation."""
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"${value / scale:.3g}{suffix}"
    return f"${value:.3g}"


def _save(fig: Figure, out: Path, fmt: str) -> None:
    FigureCanvasAgg(fig)
    with mpl.rc_context({"svg.fonttype": "none", "svg.hashsalt": "yieldstream"}):
        fig.savefig(out, format=fmt, dpi=DPI, metadata={"Date": None} if fmt == "svg" else None)


def _dates(ax: Axes) -> None:
    """Concise date ticks (``Mar 02``, the year once); matplotlib.dates has no type hints."""
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]


def draw_history(lines: Sequence[Line], out: Path, fmt: str) -> None:
    """APY and real APY (dashed) on top, in percent; TVL below, in USD; shared time axis.

    One colour per product and source, the same in both panels; the legend names them.
    """
    fig = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI, layout="constrained")
    rates, tvl = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    palette = mpl.colormaps["tab10" if len(lines) <= 10 else "tab20"]
    any_real = any_tvl = False
    for i, line in enumerate(lines):
        style = {
            "color": palette(i % palette.N),
            "marker": "o" if len(line.times) <= _MARKERS_UP_TO else None,
            "markersize": 3,
            "linewidth": 1.5,
        }
        label = _text(line.label)
        rates.plot(line.times, _nan(line.apy_pct), label=label, **style)
        if any(v is not None for v in line.real_apy_pct):
            any_real = True
            real = {**style, "marker": "x" if style["marker"] else None, "markersize": 4}
            rates.plot(line.times, _nan(line.real_apy_pct), linestyle="--", **real)
        if any(v is not None for v in line.tvl_usd):
            any_tvl = True
            tvl.plot(line.times, _nan(line.tvl_usd), **style)
    rates.set_title(
        "APY and real APY (dashed: net of the token's inflation)"
        if any_real
        else "APY (no real APY: no inflation figure in the store applies)"
    )
    rates.set_ylabel("APY (% a year)")
    rates.yaxis.set_major_formatter(PercentFormatter(decimals=None))
    tvl.set_title("TVL" if any_tvl else "TVL: no figure in the store for these products")
    tvl.set_ylabel("TVL (USD)")
    tvl.yaxis.set_major_formatter(FuncFormatter(usd))
    tvl.set_xlabel("observed at (UTC)")
    for ax in (rates, tvl):
        ax.grid(visible=True, alpha=0.3)
        _dates(ax)
    handles, labels = rates.get_legend_handles_labels()
    if any_real:
        handles += [
            Line2D([], [], color="grey", marker="o", markersize=3),
            Line2D([], [], color="grey", marker="x", markersize=4, linestyle="--"),
        ]
        labels += ["APY", "real APY"]
    fig.legend(handles, labels, loc="outside lower center", ncols=min(3, len(labels)))
    products = list(dict.fromkeys(line.product_id for line in lines))
    fig.suptitle(_text(f"Yield over time: {', '.join(products)}"))
    _save(fig, out, fmt)


def _nan(values: Sequence[float | None]) -> list[float]:
    """A gap where a figure is missing (matplotlib breaks a line at NaN)."""
    return [float("nan") if v is None else v for v in values]


def draw_compare(asset: str, bars: Sequence[Bar], out: Path, fmt: str) -> None:
    """Bars per strategy and venue: TVL-weighted APY and real APY, with products and TVL."""
    fig = Figure(figsize=(WIDTH, HEIGHT), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    positions = list(range(len(bars)))
    any_median = any(not b.weighted for b in bars)
    real = [b.real_apy_pct for b in bars]
    any_real = any(v is not None for v in real)
    width = 0.38 if any_real else 0.6
    apy = ax.bar(
        [x - width / 2 * any_real for x in positions],
        _nan([b.apy_pct for b in bars]),
        width,
        label="APY, TVL-weighted" + ("; hatched: median, no TVL known" * any_median),
        color="tab:blue",
    )
    for patch, bar in zip(apy.patches, bars, strict=True):
        if not bar.weighted:
            patch.set_hatch("//")
    if any_real:
        ax.bar(
            [x + width / 2 for x in positions],
            _nan(real),
            width,
            label="real APY (net of inflation)",
            color="tab:orange",
        )
    tops = [max(v for v in (b.apy_pct, b.real_apy_pct, 0.0) if v is not None) for b in bars]
    for x, top, bar in zip(positions, tops, bars, strict=True):
        noun = "product" if bar.products == 1 else "products"
        tvl = "TVL unknown" if bar.tvl_usd is None else f"TVL {usd(bar.tvl_usd)}"
        ax.annotate(
            _text(f"{bar.products} {noun}\n{tvl}"),
            (x, top),
            xytext=(0, 4),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=9,
        )
    ax.set_xticks(positions, [f"{b.strategy}\n{b.venue}" for b in bars])
    ax.set_xlabel("strategy and venue")
    ax.set_ylabel("APY (% a year)")
    ax.yaxis.set_major_formatter(PercentFormatter(decimals=None))
    ax.margins(y=0.2)
    half = max(len(bars), 4) / 2 + 0.1  # room for four groups: a lone one stays bar-sized
    ax.set_xlim((len(bars) - 1) / 2 - half, (len(bars) - 1) / 2 + half)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.grid(visible=True, axis="y", alpha=0.3)
    ax.legend(
        loc="upper right", title=None if any_real else "no real APY: no inflation figure applies"
    )
    ax.set_title(_text(f"{asset}: strategies compared, all chains (each product's newest figure)"))
    _save(fig, out, fmt)


__all__ = ["draw_compare", "draw_history", "usd"]
