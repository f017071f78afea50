// Progressive enhancement of a pre-rendered batch page. Without this script the page is complete:
// the first rows, the chart and links to the other rows are in the HTML. With it, the embedded rows
// can be sorted, filtered and paged, and the latest page swaps in a newer batch from the API.
(() => {
  "use strict";
  const main = document.querySelector("main[data-batch-date]");
  const dataEl = document.getElementById("batch-data");
  if (!main || !dataEl) return;
  let data;
  try {
    data = JSON.parse(dataEl.textContent);
  } catch {
    return; // a broken data block leaves the static table, which is still right
  }

  const PAGE = 100;
  const API_LIMIT = 500; // the API's largest page
  const $ = (id) => document.getElementById(id);
  const table = $("predictions");
  const heads = Array.from(table.tHead.rows[0].cells);
  const labels = heads.map((th) => th.textContent);
  const cols = data.columns;
  const changeAt = cols.findIndex((c) => c.kind === "change");
  const state = { date: main.dataset.batchDate, rows: data.rows, sort: -1, desc: false, q: "", page: 0 };

  const text = (v) => (v === null || v === undefined ? "" : String(v));
  // Numbers as the build prints them (chalice_app/website/numbers.py): the column's decimals with
  // thousands separators and no "-0.0", or "1.23 × 10⁻⁷" (column.digits significant digits) when
  // decimals is null or |v| >= 1e16. toFixed and toExponential round as numbers.py does.
  const SUPER = { "-": "⁻", 0: "⁰", 1: "¹", 2: "²", 3: "³", 4: "⁴", 5: "⁵", 6: "⁶", 7: "⁷", 8: "⁸", 9: "⁹" };
  function scientific(v, digits) {
    if (v === 0) return "0";
    const [mantissa, exp] = v.toExponential(digits - 1).split("e");
    return `${mantissa} × 10${exp.replace("+", "").replace(/./g, (ch) => SUPER[ch])}`;
  }
  function num(v, c) {
    if (!Number.isFinite(v)) return String(v);
    if (c.decimals === null || c.decimals === undefined || !(Math.abs(v) < 1e16)) {
      return scientific(v, c.decimals === null || c.decimals === undefined ? c.digits || 3 : 3);
    }
    const abs = Math.abs(v).toFixed(c.decimals);
    const dot = abs.indexOf(".");
    const whole = dot < 0 ? abs : abs.slice(0, dot);
    const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",") + (dot < 0 ? "" : abs.slice(dot));
    return (v < 0 && /[1-9]/.test(abs) ? "-" : "") + grouped;
  }
  // changes.change_text: "+12.4 (+3.1%)", "new" or "".
  function changeText(delta, pct, c) {
    if (typeof delta === "string") return delta;
    if (typeof delta !== "number") return "";
    const shown = num(delta, c);
    const sign = delta > 0 && /[1-9]/.test(shown) ? "+" : "";
    if (typeof pct !== "number") return sign + shown;
    const p = num(pct, { decimals: 1 });
    return `${sign}${shown} (${pct > 0 && p !== "0.0" ? "+" : ""}${p}%)`;
  }
  function cellText(row, i) {
    const c = cols[i];
    const v = row[i];
    if (i === changeAt) return changeText(v, row[cols.length], c);
    return c.numeric && typeof v === "number" ? num(v, c) : text(v);
  }
  // Not toLocaleString: initialising Intl on load made the script's start-up a long task.
  const fmt = (n) => String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  let collator = null; // created on the first text sort, not on every comparison
  // "new" in the change column sorts with the missing values.
  const isMissing = (v, i) => v === null || v === undefined || (i === changeAt && typeof v !== "number");

  // Missing values sort last in both directions, as the API orders them.
  function compare(i, desc) {
    return (a, b) => {
      const x = a[i];
      const y = b[i];
      if (isMissing(x, i) || isMissing(y, i)) return isMissing(x, i) - isMissing(y, i);
      const r = typeof x === "number" && typeof y === "number"
        ? x - y
        : (collator ||= new Intl.Collator("en", { numeric: true })).compare(String(x), String(y));
      return desc ? -r : r;
    };
  }

  // Same rule as the API's q: a case-insensitive substring of any text field.
  function view() {
    let rows = state.rows;
    if (state.q) {
      const q = state.q.toLowerCase();
      rows = rows.filter((row) => row.some((v, i) => i !== changeAt && typeof v === "string"
        && v.toLowerCase().includes(q)));
    }
    if (state.sort >= 0) rows = rows.slice().sort(compare(state.sort, state.desc));
    return rows;
  }

  function rowElement(row) {
    const tr = document.createElement("tr");
    if (changeAt >= 0 && row[changeAt] === "new") tr.className = "new";
    cols.forEach((c, i) => {
      const cell = document.createElement(i === 0 ? "th" : "td");
      if (i === 0) {
        cell.scope = "row";
        if (text(row[0]).length > 16) cell.title = text(row[0]); // a long id is cut: its whole text on hover
      } else {
        cell.dataset.label = labels[i]; // the card's label on a phone
      }
      if (c.numeric) cell.className = "n";
      if (c.numeric && i !== changeAt && Number.isFinite(row[i])) cell.title = String(row[i]); // every digit
      cell.textContent = cellText(row, i); // never markup: labels are data
      tr.appendChild(cell);
    });
    return tr;
  }

  function showControls(matching) {
    const pages = Math.max(1, Math.ceil(matching / PAGE));
    const start = state.page * PAGE;
    const shown = Math.max(0, Math.min(PAGE, matching - start));
    const match = state.q ? ` matching “${state.q}”` : "";
    $("count").textContent = shown
      ? `Rows ${fmt(start + 1)}–${fmt(start + shown)} of ${fmt(matching)}${match}`
      : `No rows${match}`;
    $("page-label").textContent = `Page ${fmt(state.page + 1)} of ${fmt(pages)}`;
    $("prev").disabled = state.page === 0;
    $("next").disabled = state.page >= pages - 1;
  }

  function render() {
    const rows = view();
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    const start = state.page * PAGE;
    table.tBodies[0].replaceChildren(...rows.slice(start, start + PAGE).map(rowElement));
    showControls(rows.length);
  }

  function showSort() {
    heads.forEach((th, j) => {
      if (j === state.sort) th.setAttribute("aria-sort", state.desc ? "descending" : "ascending");
      else th.removeAttribute("aria-sort");
    });
    // The caption says the order shown: the model's, or the column and direction sorted by.
    $("table-order").textContent = state.sort >= 0
      ? `, sorted by ${labels[state.sort]}, ${state.desc ? "descending" : "ascending"}`
      : " in the model's order";
  }

  // ---- the view in the URL: ?sort=<column>&order=asc|desc&q=<text>&page=<n> ----
  // Sorting and paging add a history entry (back returns to the previous view); typing in the
  // filter replaces the current one, so back does not step through every keystroke.
  function query() {
    const p = new URLSearchParams();
    if (state.sort >= 0) {
      p.set("sort", cols[state.sort].name);
      p.set("order", state.desc ? "desc" : "asc");
    }
    if (state.q) p.set("q", state.q);
    if (state.page > 0) p.set("page", String(state.page + 1));
    const q = p.toString();
    return location.pathname + (q ? `?${q}` : "");
  }
  function remember(replace) {
    const url = query();
    if (url === location.pathname + location.search) return;
    if (replace) history.replaceState(null, "", url);
    else history.pushState(null, "", url);
  }
  function restore() {
    const p = new URLSearchParams(location.search);
    state.sort = cols.findIndex((c) => c.name === p.get("sort"));
    state.desc = state.sort >= 0 && p.get("order") === "desc";
    state.q = (p.get("q") || "").trim();
    state.page = Math.max(0, (Number.parseInt(p.get("page"), 10) || 1) - 1);
    $("filter").value = state.q;
    showSort();
    render();
    remember(true); // an unknown column or page out of range: the URL says what is shown
  }

  function sortBy(i) {
    state.desc = state.sort === i ? !state.desc : false;
    state.sort = i;
    state.page = 0;
    showSort();
    render();
    remember(false);
  }

  heads.forEach((th, i) => {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = th.textContent;
    button.addEventListener("click", () => sortBy(i));
    th.replaceChildren(button);
  });
  table.classList.add("sortable");
  $("filter").addEventListener("input", (event) => {
    state.q = event.target.value.trim();
    state.page = 0;
    render();
    remember(true);
  });
  $("prev").addEventListener("click", () => { state.page -= 1; render(); remember(false); });
  $("next").addEventListener("click", () => { state.page += 1; render(); remember(false); });
  window.addEventListener("popstate", restore);
  if (location.search) restore();
  else showControls(state.rows.length); // the server already rendered the first page's rows
  // Reveal the controls (their space was reserved) and drop the links they replace. Element by
  // element rather than a class on <html>, which would restyle the whole page at once.
  document.querySelectorAll(".enhance").forEach((el) => el.classList.remove("enhance"));
  document.querySelectorAll(".static-only").forEach((el) => { el.hidden = true; });

  // ---- live refresh: only pages marked data-api (the latest page) ask the API ----

  async function getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
    return response.json();
  }

  function bind(name, value) {
    document.querySelectorAll(`[data-bind="${name}"]`).forEach((el) => { el.textContent = value; });
  }

  function showTime(iso) {
    const t = new Date(iso);
    return Number.isNaN(t.getTime()) ? text(iso) : `${t.toISOString().slice(0, 16).replace("T", " ")} UTC`;
  }

  // The change column of a newer batch, against the rows this page had (the batch before it).
  function changed(oldRows, rows) {
    const at = cols.findIndex((c) => c.name === data.change_of);
    const before = new Map(oldRows.map((r) => [r[0], r[at]]));
    const count = { up: 0, down: 0, same: 0, new: 0 };
    rows.forEach((r) => {
      const prev = before.get(r[0]);
      let delta = null;
      let pct = null;
      if (!before.has(r[0])) {
        delta = "new";
        count.new += 1;
      } else if (typeof prev === "number" && typeof r[at] === "number") {
        delta = r[at] - prev;
        pct = prev === 0 ? null : Math.round((delta / Math.abs(prev)) * 1000) / 10 || 0;
        count[delta > 0 ? "up" : delta < 0 ? "down" : "same"] += 1;
      }
      before.delete(r[0]);
      r[changeAt] = delta;
      r[cols.length] = pct;
    });
    return `${fmt(count.up)} up, ${fmt(count.down)} down${count.same ? `, ${fmt(count.same)} unchanged` : ""}, `
      + `${fmt(count.new)} new, ${fmt(before.size)} dropped since ${state.date}`;
  }

  function apply(meta, items) {
    const old = state.date;
    const oldRows = state.rows;
    state.rows = items.map((item) => cols.map((c) => (item[c.name] === undefined ? null : item[c.name])));
    if (changeAt >= 0) {
      const summary = changed(oldRows, state.rows);
      const at = summary.lastIndexOf(" since ") + " since ".length;
      const since = document.createElement("span");
      since.className = "nobr"; // the date never breaks across lines
      since.textContent = summary.slice(at);
      document.querySelectorAll('[data-bind="changes"]').forEach((el) => el.replaceChildren(summary.slice(0, at), since.cloneNode(true)));
      document.querySelectorAll(".dropped, .downloads").forEach((el) => { el.hidden = true; });
    }
    state.date = meta.date;
    state.page = 0;
    const model = meta.model || {};
    bind("date", meta.date);
    bind("model", [model.name, model.version].filter(Boolean).join(" "));
    bind("total", fmt(Number(meta.total)));
    bind("generated", showTime(meta.generated_at));
    document.querySelectorAll('time[data-bind="generated"]').forEach((el) => { el.dateTime = text(meta.generated_at); });
    // The chart was drawn at build time; say which batch it shows rather than mislabel it.
    bind("chart-note", `This chart shows the batch of ${old}; the table shows ${meta.date}.`);
    document.title = document.title.replace(old, meta.date);
    render();
    $("live-note").textContent = `Updated to ${meta.date}: a newer batch was published after this page was built.`;
  }

  async function refresh(api) {
    const index = await getJSON(`${api}/predictions`);
    if (typeof index.latest !== "string" || !(index.latest > state.date)) return;
    let url = `${api}/predictions/latest?limit=${API_LIMIT}`;
    let meta = null;
    let items = [];
    while (url && items.length < data.max_rows) {
      const page = await getJSON(url);
      if (!Array.isArray(page.items) || typeof page.date !== "string") throw new Error("unexpected answer");
      meta = meta || page;
      items = items.concat(page.items);
      // The cursor pins the batch, so later pages cannot mix in an even newer one.
      url = page.next_cursor
        ? `${api}/predictions/${meta.date}?limit=${API_LIMIT}&cursor=${encodeURIComponent(page.next_cursor)}`
        : null;
    }
    if (meta.date > state.date) apply(meta, items.slice(0, data.max_rows));
  }

  if (main.dataset.api) {
    refresh(main.dataset.api).catch(() => {
      // The API is down or answered nonsense: the pre-rendered batch stays, which is still correct,
      // only older. Nothing to tell the reader that the page does not already say.
    });
  }
})();
