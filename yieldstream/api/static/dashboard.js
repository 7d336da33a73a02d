// The yieldstream dashboard: the latest products, a product's chart, strategies
// compared for an asset. Plain browser JavaScript over the read API (/v1); charts by
// uPlot (vendor/). Text from the API is put in the page as text, never as HTML.
"use strict";

const PAGE = 50;
const KEY = "yieldstream.api_key";
const $ = (selector) => document.querySelector(selector);
const usd = new Intl.NumberFormat("en", {
  style: "currency", currency: "USD", notation: "compact", maximumFractionDigits: 1,
});
const state = { cursor: null, chart: null, product: null, compared: null };

function status(text, failed = false) {
  const line = $("#status");
  line.textContent = text;
  line.classList.toggle("failed", failed);
}

// GET an API path with its query (empty values left out); the JSON answer.
async function api(path, query = {}, retried = false) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query)) {
    if (value !== "" && value !== null && value !== undefined) url.searchParams.set(name, value);
  }
  const headers = { Accept: "application/json" };
  const key = sessionStorage.getItem(KEY);
  if (key) headers["X-API-Key"] = key;
  const answer = await fetch(url, { headers });
  if (answer.status === 401 && !retried && (await askKey())) return api(path, query, true);
  if (!answer.ok) {
    let detail = answer.statusText;
    try {
      const body = await answer.json();
      detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch (_) { /* not JSON: keep the status text */ }
    throw new Error(`${url.pathname}: ${answer.status} ${detail}`);
  }
  return answer.json();
}

function askKey() {
  const dialog = $("#key-dialog");
  return new Promise((done) => {
    dialog.addEventListener("close", () => {
      const key = dialog.querySelector("input").value.trim();
      if (key) sessionStorage.setItem(KEY, key);
      done(Boolean(key));
    }, { once: true });
    dialog.showModal();
  });
}

const pct = (value) => (value === null || value === undefined ? "–" : value.toFixed(2));
const money = (value) => (value === null || value === undefined ? "–" : usd.format(value));
const when = (text) => (text ? text.replace("T", " ").slice(0, 16) : "–");

function cells(row, values) {
  for (const [text, numeric] of values) {
    const cell = row.insertCell();
    cell.textContent = text;
    if (numeric) cell.className = "num";
  }
}

// --- products -----------------------------------------------------------------

async function loadChoices() {
  // The strategies and venues the API accepts, from its own OpenAPI schema.
  try {
    const schemas = (await api("/openapi.json")).components.schemas;
    for (const [name, field] of [["Strategy", "strategy"], ["Venue", "venue"]]) {
      const select = $(`#filters [name=${field}]`);
      for (const value of schemas[name]?.enum ?? []) select.add(new Option(value, value));
    }
  } catch (error) {
    status(`filters incomplete: ${error.message}`, true);
  }
}

function filters() {
  return Object.fromEntries(new FormData($("#filters")).entries());
}

async function loadProducts(more = false) {
  const body = $("#products tbody");
  if (!more) {
    body.replaceChildren();
    state.cursor = null;
  }
  status("loading products…");
  try {
    const page = await api("/v1/products", { ...filters(), limit: PAGE, cursor: state.cursor });
    for (const item of page.items) addProduct(body, item);
    state.cursor = page.next_cursor;
    $("#more").hidden = !page.next_cursor;
    $("#products-empty").hidden = body.rows.length > 0;
    status(`${body.rows.length} products${page.next_cursor ? " (more below)" : ""}`);
    return page.items;
  } catch (error) {
    status(error.message, true);
    return [];
  }
}

function addProduct(body, item) {
  const row = body.insertRow();
  row.tabIndex = 0;
  row.dataset.id = item.id;
  cells(row, [
    [item.protocol], [item.chain], [item.symbol], [item.strategy], [item.venue],
    [pct(item.apy_pct), true], [money(item.tvl_usd), true], [item.source],
    [when(item.observed_at)],
  ]);
  const open = () => showProduct(item, row);
  row.addEventListener("click", open);
  row.addEventListener("keydown", (event) => { if (event.key === "Enter") open(); });
}

// --- one product: APY, real APY and TVL over time --------------------------------

async function showProduct(item, row) {
  state.product = item;
  for (const other of document.querySelectorAll("#products tr.selected")) {
    other.classList.remove("selected");
  }
  row?.classList.add("selected");
  $("#product").hidden = false;
  $("#product-title").textContent = `${item.protocol} · ${item.symbol} on ${item.chain}`;
  $("#product-facts").textContent =
    `${item.strategy}, ${item.venue} · APY ${pct(item.apy_pct)} % · TVL ${money(item.tvl_usd)}` +
    ` · ${item.source} · id ${item.id}`;
  const asset = $("#compare-form [name=asset]");
  asset.value = item.asset;
  await Promise.all([drawHistory(item), showRealYield(item), loadCompare(item.asset)]);
}

async function drawHistory(item) {
  status("loading history…");
  let history;
  try {
    history = await api(`/v1/products/${encodeURIComponent(item.id)}/history`, {
      interval: $("#interval").value,
    });
  } catch (error) {
    status(error.message, true);
    return;
  }
  if (state.product !== item) return; // another product was clicked meanwhile
  const points = history.items;
  const data = [
    points.map((p) => Date.parse(p.at) / 1000),
    points.map((p) => p.apy_pct),
    points.map((p) => p.real_apy_pct),
    points.map((p) => p.tvl_usd),
  ];
  state.chart?.destroy();
  state.chart = null;
  $("#chart-empty").hidden = points.length > 0;
  if (points.length) state.chart = new uPlot(chartOptions(points.length), data, $("#chart"));
  status(`${points.length} point${points.length === 1 ? "" : "s"} of ${item.id}`);
}

function chartOptions(count) {
  const dots = { show: count < 60, size: 6 };
  return {
    width: Math.max(320, $("#chart").clientWidth || 800),
    height: 320,
    scales: {
      // One point has no span: a day around it.
      x: { time: true, range: (_, min, max) => (min === max ? [min - 43200, max + 43200] : [min, max]) },
      pct: { auto: true },
      usd: { auto: true },
    },
    series: [
      { label: "time (UTC)" },
      { label: "APY %", scale: "pct", stroke: "#1f77b4", width: 2, points: dots, spanGaps: true },
      {
        label: "real APY %", scale: "pct", stroke: "#2ca02c", width: 2, dash: [6, 4],
        points: dots, spanGaps: true,
      },
      {
        label: "TVL USD", scale: "usd", stroke: "#ff7f0e", width: 1.5, points: dots,
        spanGaps: true, value: (_, v) => money(v),
      },
    ],
    axes: [
      {},
      { scale: "pct", label: "%", values: (_, ticks) => ticks.map((t) => t.toFixed(2)) },
      {
        scale: "usd", side: 1, label: "TVL", grid: { show: false },
        values: (_, ticks) => ticks.map((t) => usd.format(t)),
      },
    ],
  };
}

async function showRealYield(item) {
  if (item.strategy !== "staking") return;
  try {
    const page = await api("/v1/real-yields", { source: item.source, chain: item.chain, limit: 500 });
    const found = page.items.find((r) => r.id === item.id);
    if (!found || state.product !== item) return;
    const real = found.real_apy_pct === null
      ? `no real APY (${found.no_real_yield})`
      : `real APY ${pct(found.real_apy_pct)} % (${found.token} inflation ${pct(found.inflation_pct)} %)`;
    $("#product-facts").textContent += ` · ${real}`;
  } catch (error) {
    status(error.message, true);
  }
}

// --- strategies compared for an asset -------------------------------------------

async function loadCompare(asset) {
  state.compared = asset;
  const body = document.createElement("tbody");
  if (!asset) {
    $("#compare tbody").replaceWith(body);
    return;
  }
  try {
    const page = await api("/v1/compare", { asset, limit: 200 });
    if (state.compared !== asset) return; // another asset was asked for meanwhile
    for (const c of page.items) {
      const row = body.insertRow();
      if (c.chain === "(all chains)") row.className = "total";
      cells(row, [
        [c.chain], [c.strategy], [c.venue], [String(c.products), true], [money(c.tvl_usd), true],
        [pct(c.apy_tvl_weighted_pct), true], [pct(c.apy_median_pct), true],
        [pct(c.real_apy_tvl_weighted_pct), true], [pct(c.sigma_median_pct), true],
      ]);
    }
    $("#compare tbody").replaceWith(body);
    $("#compare-empty").hidden = page.items.length > 0;
  } catch (error) {
    status(error.message, true);
  }
}

// --- wiring -----------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", async () => {
  $("#filters").addEventListener("submit", (event) => {
    event.preventDefault();
    loadProducts();
  });
  $("#more").addEventListener("click", () => loadProducts(true));
  $("#interval").addEventListener("change", () => state.product && drawHistory(state.product));
  $("#compare-form").addEventListener("submit", (event) => {
    event.preventDefault();
    loadCompare($("#compare-form [name=asset]").value.trim());
  });
  window.addEventListener("resize", () => {
    state.chart?.setSize({ width: Math.max(320, $("#chart").clientWidth), height: 320 });
  });
  await loadChoices();
  const first = await loadProducts();
  const asset = $("#compare-form [name=asset]");
  if (!asset.value && first.length) {
    asset.value = first[0].asset;
    loadCompare(asset.value);
  }
});
