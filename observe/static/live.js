// Live page: poll /api/live every second and /api/status every three, and draw what they say.
"use strict";

const show = (id, value) => { document.getElementById(id).textContent = formatNumber(value); };

async function refreshLive() {
  try {
    const reply = await fetch("/api/live");
    const live = await reply.json();
    const now = live.now;
    document.getElementById("window").textContent = live.window_s;
    if (now) {
      show("produced", now.produced_per_s); show("processed", now.processed_per_s); show("lag", now.lag);
      show("fresh50", now.freshness_p50_ms); show("fresh99", now.freshness_p99_ms);
      show("rec50", now.recommend_p50_ms); show("rec99", now.recommend_p99_ms); show("srv99", now.server_recommend_p99_ms);
      document.getElementById("fresh-n").textContent = now.freshness_n;
      document.getElementById("rec-n").textContent = now.recommend_n;
      show("search50", now.search_p50_ms); show("search99", now.search_p99_ms);
      document.getElementById("search-n").textContent = now.search_n;
      document.getElementById("processed-source").textContent = now.processed_source;
    }
    drawChart(document.getElementById("chart-rate"), live.series,
      [{key: "produced_per_s", color: "#58a6ff"}, {key: "processed_per_s", color: "#3fb950"}]);
    drawChart(document.getElementById("chart-fresh"), live.series,
      [{key: "freshness_p99_ms", color: "#d29922"}, {key: "freshness_p50_ms", color: "#58a6ff"}]);
    drawChart(document.getElementById("chart-rec"), live.series,
      [{key: "recommend_p99_ms", color: "#d29922"}, {key: "recommend_p50_ms", color: "#58a6ff"},
       {key: "server_recommend_p99_ms", color: "#f85149"}]);
    document.getElementById("error").textContent = "";
  } catch (err) {
    document.getElementById("error").textContent = "live figures unavailable: " + err;
  }
}

async function refreshStatus() {
  try {
    const status = await (await fetch("/api/status")).json();
    const badges = document.getElementById("badges");
    badges.replaceChildren(...Object.entries(status.components).map(([name, c]) => {
      const badge = document.createElement("span");
      badge.className = "badge " + c.state;
      badge.dataset.component = name;
      badge.title = c.summary;
      badge.textContent = `${name} ${c.state}`;
      return badge;
    }));
  } catch (err) {
    document.getElementById("error").textContent = "status unavailable: " + err;
  }
}

refreshLive(); refreshStatus();
setInterval(refreshLive, 1000);
setInterval(refreshStatus, 3000);
