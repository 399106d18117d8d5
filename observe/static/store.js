// Storefront: list popular items, publish a click through the server, and show the session's recommendations.
"use strict";

const params = new URLSearchParams(location.search);
let sessionId = params.get("session");
if (!sessionId) {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  sessionId = "store-" + Array.from(bytes, b => b.toString(16).padStart(2, "0")).join("");
  history.replaceState(null, "", `/store?session=${sessionId}`);
}
document.getElementById("session").textContent = sessionId;
const api = `/api/sessions/${encodeURIComponent(sessionId)}`;
let busy = false;

function hue(text) {
  let h = 0;
  for (const ch of text) h = (h * 31 + ch.charCodeAt(0)) % 360;
  return h;
}

function card(item, caption, fresh) {
  const el = document.createElement("div");
  el.className = "item" + (fresh ? " new" : "");
  el.dataset.itemId = item.item_id;
  const swatch = document.createElement("div");
  swatch.className = "swatch";
  swatch.style.background = `hsl(${hue(item.item_id)} 55% 45%)`;
  const id = document.createElement("div"); id.className = "id"; id.textContent = item.item_id;
  const why = document.createElement("div"); why.className = "why"; why.textContent = caption;
  el.append(swatch, id);
  if (item.title) {  // from the catalogue, where the stack has one (streamrec catalog publish)
    const title = document.createElement("div"); title.className = "title"; title.textContent = item.title;
    el.append(title);
  }
  if (item.price !== undefined && item.price !== null) {
    const price = document.createElement("div"); price.className = "price"; price.textContent = `$${item.price.toFixed(2)}`;
    el.append(price);
  }
  el.append(why);
  el.addEventListener("click", () => clickItem(item.item_id));
  return el;
}

// Text with some parts in bold, built from nodes: ids and versions never become markup.
function setText(el, ...parts) {
  el.replaceChildren(...parts.map((part, i) => {
    if (i % 2 === 0) return document.createTextNode(part);
    const bold = document.createElement("b"); bold.textContent = part; return bold;
  }));
}

function showError(text) { document.getElementById("error").textContent = text || ""; }

// The label, the last click and the captions come from the server's view (observe/storefront.py): a list the
// scorer answered from popularity is labelled so, and only the session model's items show a model score.
function render(view) {
  const recs = document.getElementById("recs");
  const before = new Set(recs.dataset.signature ? recs.dataset.signature.split(",") : []);
  const signature = view.recommendations.map(r => r.item_id).join(",");
  if (signature !== recs.dataset.signature) {
    recs.replaceChildren(...view.recommendations.map(r =>
      card(r, r.from_model ? `${r.reason} · ${r.score.toFixed(3)}` : r.reason,
           before.size > 0 && !before.has(r.item_id))));
    recs.dataset.signature = signature;
    recs.dataset.changes = String(Number(recs.dataset.changes) + 1);
  }
  recs.dataset.source = view.source;
  const label = document.getElementById("recs-label");
  label.textContent = view.label.text;
  label.dataset.kind = view.label.kind;
  const age = view.state_age_ms >= 0 ? `, state ${view.state_age_ms} ms old` : "";
  const model = view.label.kind === "popular" ? `not ranked by model ${view.model_version}` : `model ${view.model_version}`;
  setText(document.getElementById("recs-meta"), "source ", view.source,
    `${view.fallback ? " (fallback)" : ""}, ${model}${age}, Recommend ${view.recommend_ms} ms`);
  const last = document.getElementById("last-item");
  last.dataset.itemId = view.last_click || "";
  if (view.last_click) setText(last, "", view.last_click, ` (${view.events} events in this session)`);
  else last.textContent = "none yet";
  document.getElementById("history").textContent =
    view.history.length ? view.history.join(" → ") : "no events yet";
}

async function loadCatalogue() {
  const reply = await fetch("/api/catalogue");
  const body = await reply.json();
  if (!reply.ok) { showError(body.error); return; }
  document.getElementById("catalogue").replaceChildren(...body.items.map(i => card(i, i.reason, false)));
}

async function refreshSession() {
  if (busy) return;
  try {
    const reply = await fetch(api);
    const body = await reply.json();
    if (!reply.ok) { showError(body.error); return; }
    render(body); showError("");
  } catch (err) { showError("storefront server unreachable: " + err); }
}

// This page's own click: the note says how long its refresh took; the last click above it stays the session's.
async function clickItem(itemId) {
  busy = true;
  const line = document.getElementById("click-note");
  line.textContent = `· you clicked ${itemId}: publishing…`;
  try {
    const reply = await fetch(`${api}/clicks`, {method: "POST", headers: {"Content-Type": "application/json"},
                                                 body: JSON.stringify({item_id: itemId})});
    const body = await reply.json();
    if (!reply.ok) { line.textContent = `· you clicked ${itemId}: failed`; showError(body.error); return; }
    document.getElementById("last-click").dataset.eventId = body.event_id;
    if (body.freshness_ms === null) setText(line, "· you clicked ", itemId, ": no refreshed list yet (worker busy or down)");
    else setText(line, "· you clicked ", itemId, ": refreshed list visible in ", `${body.freshness_ms} ms`);
    render(body); showError("");
  } catch (err) { showError("click failed: " + err); }
  finally { busy = false; }
}

async function search(event) {
  event.preventDefault();
  const query = document.getElementById("search-box").value.trim();
  if (!query) return;
  const meta = document.getElementById("search-meta");
  try {
    const reply = await fetch(`${api}/search?q=${encodeURIComponent(query)}`);
    const body = await reply.json();
    if (!reply.ok) { showError(body.error); return; }
    setText(meta, "", `${body.items.length} of ${body.catalogue_products} products`, ` · ranked by ${body.source}` +
      `${body.fallback ? " (fallback)" : ""} · Search ${body.search_ms} ms`);
    document.getElementById("search-results").replaceChildren(...body.items.map(i => card(i, i.reason, false)));
    showError("");
  } catch (err) { showError("search failed: " + err); }
}

document.getElementById("search-form").addEventListener("submit", search);
loadCatalogue().then(refreshSession);
setInterval(refreshSession, 1500);
setInterval(loadCatalogue, 15000);
