"""``yieldstream plot``: charts of products over time, and of an asset's strategies."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

import yieldstream
from sinks.lake import Store
from sinks.writer import LakeWriter
from tests.test_cli import yieldstream_cmd
from yieldstream.contracts import Level, Observation, Strategy, Venue, make_observation
from yieldstream.plot import history

DAY0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
STETH = "lido:ethereum:steth"
USDC = "aave-v3:ethereum:usdc"
PNG = b"\x89PNG\r\n\x1a\n"
SVG = "{http://www.w3.org/2000/svg}"
# tab10's first three colours: the first three lines of a history chart.
BLUE, ORANGE, GREEN = (31, 119, 180), (255, 127, 14), (44, 160, 44)


def product(source: str, product_id: str, at: datetime, **fields: object) -> Observation:
    protocol, chain, symbol = product_id.split(":")[:3]
    return make_observation(
        {
            "source": source,
            "pool_id": f"{source}:{product_id}",
            "product_id": product_id,
            "observed_at": at,
            "protocol": protocol,
            "chain": chain.capitalize(),
            "symbol": symbol.upper(),
            "strategy": Strategy.STAKING,
            "venue": Venue.DEFI,
            **fields,
        }
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten days of stETH from two sources with ETH's inflation (so a real APY), a USDC
    lending market, an ETH lending market and a CeFi ETH staking product with no TVL."""
    directory = tmp_path_factory.mktemp("plot") / "store"
    writer = LakeWriter(Store(directory), compact_every=None)
    rows = []
    for day in range(10):
        at = DAY0 + timedelta(days=day)
        rows += [
            product("lido", STETH, at, apy_pct=3.0 + day / 20, tvl_usd=30e9 + day * 1e8),
            product("defillama-yields", STETH, at, apy_pct=3.2, tvl_usd=29e9),
            product(
                "defillama-yields",
                USDC,
                at,
                apy_pct=5 - day / 10,
                tvl_usd=2e9,
                strategy=Strategy.LENDING,
            ),
            make_observation(
                {
                    "source": "ultrasound",
                    "pool_id": "eth",
                    "observed_at": at,
                    "protocol": "ethereum",
                    "chain": "Ethereum",
                    "symbol": "ETH",
                    "strategy": Strategy.STAKING,
                    "venue": Venue.DEFI,
                    "apy_pct": 0.8,
                    "level": Level.NETWORK,
                }
            ),
        ]
    last = DAY0 + timedelta(days=9)
    rows += [
        product(
            "defillama-yields",
            "aave-v3:ethereum:weth",
            last,
            apy_pct=2.0,
            tvl_usd=5e9,
            strategy=Strategy.LENDING,
        ),
        product("bitfinex", "bitfinex:off-chain:eth:staking", last, apy_pct=2.5, venue=Venue.CEFI),
    ]
    for row in rows:
        writer.store(None, row.source, 1, [row], [])
    writer.close()
    return directory


def plot(store: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return yieldstream_cmd("-d", str(store), "plot", *args)


def drawn(out: Path) -> np.ndarray:
    """The PNG at ``out`` as RGB 0-255, after checking it is a 1100 x 700 PNG."""
    assert out.read_bytes()[:8] == PNG
    image = imread(out)
    assert image.shape == (700, 1100, 4)
    return np.rint(np.asarray(image)[:, :, :3] * 255).astype(int)


def pixels_of(image: np.ndarray, colour: tuple[int, int, int]) -> int:
    """How many pixels are (within antialiasing noise of) ``colour``."""
    return int((np.abs(image - np.array(colour)).max(axis=2) <= 8).sum())


def group(out: Path, name: str) -> ET.Element:
    """An SVG chart's element ``name`` (``legend_1``, ``axes_1``: the first panel)."""
    (found,) = (g for g in ET.parse(out).getroot().iter(f"{SVG}g") if g.get("id") == name)
    return found


def legend(out: Path) -> list[str]:
    """The texts of an SVG chart's legend (svg.fonttype none keeps them as text)."""
    return [t.text or "" for t in group(out, "legend_1").iter(f"{SVG}text")]


def dashed(out: Path, panel: str = "axes_1") -> int:
    """How many dashed lines (real APYs) a panel of an SVG chart holds."""
    paths = group(out, panel).iter(f"{SVG}path")
    return sum("stroke-dasharray" in (p.get("style") or "") for p in paths)


def test_history_png_draws_a_line_per_product_and_source(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "eth.png"
    result = plot(store, STETH, USDC, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == f"wrote {out}"
    image = drawn(out)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50  # not blank: lines, text, grid
    # stETH from DefiLlama, stETH from Lido, the USDC market: each line in its colour,
    # in the APY panel and again in the TVL panel below.
    for colour in (BLUE, ORANGE, GREEN):
        assert pixels_of(image[:380], colour) > 100, colour
        assert pixels_of(image[390:610], colour) > 100, colour  # above the legend


def test_history_svg_legend_names_each_product_and_source(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "eth.svg"
    result = plot(store, STETH, USDC, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert legend(out) == [
        f"{STETH} (defillama-yields)",
        f"{STETH} (lido)",
        f"{USDC} (defillama-yields)",
        "APY",
        "real APY",
    ]
    text = out.read_text()
    assert "APY (% a year)" in text
    assert "TVL (USD)" in text
    assert "observed at (UTC)" in text
    assert dashed(out) == 2  # stETH's real APY from each source
    assert dashed(out, "axes_2") == 0  # TVL


def test_no_real_apy_where_the_store_has_none(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "usdc.svg"
    result = plot(store, USDC, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert legend(out) == [f"{USDC} (defillama-yields)"]  # no "real APY" entry
    assert dashed(out) == 0
    assert "no real APY" in out.read_text()


def test_history_reads_from_since_with_the_real_apy(store: Path) -> None:
    con = yieldstream.connect(store)
    try:
        lines = history(con, [USDC, STETH], DAY0 + timedelta(days=6))
    finally:
        con.close()
    assert [(x.product_id, x.source) for x in lines] == [
        (USDC, "defillama-yields"),
        (STETH, "defillama-yields"),
        (STETH, "lido"),
    ]
    for line in lines:
        assert line.times == [DAY0 + timedelta(days=d) for d in range(6, 10)]
    assert lines[0].real_apy_pct == [None] * 4  # lending: no real yield
    lido = lines[2]
    assert lido.apy_pct == pytest.approx([3.3, 3.35, 3.4, 3.45])
    # net of ETH's 0.8 % inflation: (1 + apy) / (1 + inflation) - 1
    expected = [((1 + (3.0 + d / 20) / 100) / 1.008 - 1) * 100 for d in range(6, 10)]
    assert lido.real_apy_pct == pytest.approx(expected)


def test_compare_draws_bars_per_strategy_and_venue(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "eth.png"
    result = plot(store, "--compare", "eth", "--out", str(out))
    assert result.returncode == 0, result.stderr
    image = drawn(out)
    assert pixels_of(image, BLUE) > 5000  # APY bars
    assert pixels_of(image, ORANGE) > 5000  # the staking bar's real APY
    svg = tmp_path / "eth.svg"
    assert plot(store, "--compare", "ETH", "--out", str(svg)).returncode == 0
    texts = [t.text for t in ET.parse(svg).getroot().iter(f"{SVG}text")]
    # staking defi, staking cefi, lending defi, in that order; USDC is another asset
    assert [t for t in texts if t in ("staking", "lending", "defi", "cefi")] == [
        "staking",
        "defi",
        "staking",
        "cefi",
        "lending",
        "defi",
    ]
    for note in ("2 products", "TVL $59.9B", "1 product", "TVL unknown", "TVL $5B"):
        assert note in texts
    assert legend(svg) == [
        "APY, TVL-weighted; hatched: median, no TVL known",
        "real APY (net of inflation)",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((f"{STETH[:-1]}",), f"no product {STETH[:-1]} (did you mean {STETH}?) in the store"),
        (
            (STETH, "nope:nowhere:tkn"),
            "no product nope:nowhere:tkn in the store; list them with: yieldstream sql",
        ),
        (("--compare", "ETX"), "no asset ETX (did you mean ETH?) in the store"),
        ((STETH, "--out", "{tmp}/chart.jpg"), "the file name must end in .png or .svg"),
        ((STETH, "--out", "{tmp}/missing/chart.png"), "missing; create it or write elsewhere"),
        ((STETH, "--since", "2027-01-01"), "no observations of lido:ethereum:steth since 2027"),
        ((), "name a product (e.g. lido:ethereum:steth), or pass --compare ASSET"),
        ((STETH, "--compare", "ETH"), "give products or --compare ASSET, not both"),
        (("--compare", "ETH", "--since", "2026-01-01"), "--since is for products' history"),
        (("--compare", " "), "--compare needs an asset, e.g. --compare ETH"),
    ],
)
def test_bad_requests_are_one_line_errors(
    store: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    out = tmp_path / "chart.png"
    if "--out" not in args:
        args = (*args, "--out", str(out))
    args = tuple(arg.format(tmp=tmp_path) for arg in args)
    result = yieldstream_cmd("-d", str(store), "plot", *args)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_an_empty_or_missing_store_says_what_to_run(tmp_path: Path) -> None:
    LakeWriter(Store(tmp_path / "empty"), compact_every=None).close()
    for directory, message in (
        ("empty", "the store holds no products yet; run `yieldstream run --once`"),
        ("none", "no store in"),
    ):
        result = yieldstream_cmd("-d", str(tmp_path / directory), "plot", STETH)
        assert result.returncode == 2
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_the_cli_starts_without_matplotlib() -> None:
    code = "import sys, yieldstream.cli; print('matplotlib' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
