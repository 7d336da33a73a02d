"""The dashboard at ``/`` in a real browser: Debian's headless Chromium, driven by
Playwright, against ``yieldstream serve`` over the API tests' store (``yieldstream
demo``'s recorded responses through the real pipeline).

A screenshot of the page is saved as ``artifacts/dashboard.png`` under the checkout
(the path is printed), for CI to keep.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, sync_playwright

from tests.sinks import tail, yieldstream_exe
from tests.yieldstream.test_app import free_port

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; nothing is downloaded
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).parents[2] / "artifacts"
# The APY line's colour in dashboard.js.
APY_RGB = (0x1F, 0x77, 0xB4)
# The recorded Lido stETH product: eight daily points.
LIDO = "lido:steth"


@pytest.fixture(scope="module")
def served(store_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``yieldstream serve`` over the store, on a free port; its base URL."""
    port = free_port()
    cwd = tmp_path_factory.mktemp("serve")  # no yieldstream.toml of the checkout is read
    env = {k: v for k, v in os.environ.items() if not k.startswith("YIELDSTREAM_")}
    log = cwd / "serve.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [yieldstream_exe(), "-d", str(store_dir), "serve", "--port", str(port)],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, tail(log)
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"yieldstream serve did not answer: {tail(log)}"
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def page() -> Iterator[Page]:
    assert CHROMIUM.exists(), "apt-get install chromium (.ci/run installs it)"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            opened = browser.new_page(viewport={"width": 1300, "height": 1400})
            errors: list[str] = []
            opened.on("pageerror", lambda error: errors.append(str(error)))
            opened.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            yield opened
            assert errors == []  # no script error, no failed request
        finally:
            browser.close()


def colour_pixels(page: Page, rgb: tuple[int, int, int]) -> int:
    """Pixels of the chart's canvas within a small distance of ``rgb``."""
    count: int = page.evaluate(
        """([r, g, b]) => {
            const canvas = document.querySelector("#chart canvas");
            const { width, height } = canvas;
            const data = canvas.getContext("2d").getImageData(0, 0, width, height).data;
            let near = 0;
            for (let i = 0; i < data.length; i += 4) {
                const d =
                    Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b);
                if (data[i + 3] > 200 && d < 40) near++;
            }
            return near;
        }""",
        list(rgb),
    )
    return count


async def test_the_app_serves_the_page_and_its_files_outside_the_api_schema(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"
    for path in ("/static/vendor/uPlot.iife.min.js", "/static/dashboard.js"):
        assert f'src="{path}"' in page.text
        script = await client.get(path)
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
    assert (await client.get("/static/vendor/uPlot.min.css")).status_code == 200
    assert (await client.get("/static/nothing.js")).status_code == 404
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "/" not in paths
    assert not [path for path in paths if path.startswith("/static")]


def test_the_dashboard_lists_products_charts_one_and_compares_strategies(
    served: str, page: Page
) -> None:
    page.goto(f"{served}/")
    rows = page.locator("#products tbody tr")
    rows.first.wait_for()
    assert rows.count() == 50  # a page; more follow
    assert page.locator("#more").is_visible()
    # The compare section starts with the first product's asset.
    page.locator("#compare tbody tr").first.wait_for()

    # Filters: ETH staking only.
    page.select_option("#filters [name=strategy]", "staking")
    page.fill("#filters [name=asset]", "ETH")
    page.click("#filters button[type=submit]")
    page.locator(f'#products tr[data-id="{LIDO}"]').wait_for()
    strategies = page.locator("#products tbody tr td:nth-child(4)").all_text_contents()
    assert strategies
    assert set(strategies) == {"staking"}

    page.click(f'#products tr[data-id="{LIDO}"]')
    page.locator("#chart canvas").wait_for()
    page.wait_for_function("document.querySelector('#status').textContent.includes('points of')")
    assert page.locator("#status").text_content() == f"8 points of {LIDO}"
    assert page.locator("#product-title").text_content() == "lido · STETH on Ethereum"
    labels = page.locator("#chart .u-legend .u-series .u-label").all_text_contents()
    assert labels == ["time (UTC)", "APY %", "real APY %", "TVL USD"]
    assert colour_pixels(page, APY_RGB) > 200  # the APY line is drawn

    compare = page.locator("#compare tbody tr")
    assert page.input_value("#compare-form [name=asset]") == "ETH"
    compare.first.wait_for()
    first = compare.first.locator("td").all_text_contents()
    assert first[0] == "(all chains)"
    staking = [
        row.locator("td").all_text_contents()
        for row in compare.all()
        if row.locator("td").nth(1).text_content() == "staking"
    ]
    assert staking

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    print(f"dashboard screenshot: {shot}")


def test_a_staking_product_shows_its_real_apy_from_the_real_yields_endpoint(
    served: str, page: Page
) -> None:
    answer = httpx.get(f"{served}/v1/real-yields", params={"limit": 500}).json()
    real = next(r for r in answer["items"] if r["real_apy_pct"] is not None)
    page.goto(f"{served}/")
    page.select_option("#filters [name=strategy]", "staking")
    page.click("#filters button[type=submit]")
    row = page.locator(f'#products tr[data-id="{real["id"]}"]')
    row.click()
    page.wait_for_function(
        "document.querySelector('#product-facts').textContent.includes('real APY')"
    )
    facts = page.locator("#product-facts").text_content() or ""
    shown = (
        f"real APY {real['real_apy_pct']:.2f} % "
        f"({real['token']} inflation {real['inflation_pct']:.2f} %)"
    )
    assert shown in facts
