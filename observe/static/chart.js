// A tiny line chart on <canvas> for the live page (no library: the machine may have no internet).
"use strict";

function drawChart(canvas, points, series) {
  // series: [{key, color, label}]; points: [{t, <key>: number|null}]
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  canvas.width = width * ratio; canvas.height = height * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);
  const values = points.flatMap(p => series.map(s => p[s.key])).filter(v => v !== null && v !== undefined);
  const top = Math.max(1e-9, ...values) * 1.15;
  const left = 44, bottom = height - 18;
  ctx.strokeStyle = "#2b3540"; ctx.fillStyle = "#8b98a5"; ctx.font = "11px sans-serif"; ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = bottom - (bottom - 6) * i / 4;
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(width, y); ctx.stroke();
    ctx.fillText(formatNumber(top * i / 4), 2, y + 4);
  }
  if (points.length < 2) return;
  const t0 = points[0].t, t1 = points[points.length - 1].t;
  const x = t => left + (width - left - 4) * (t - t0) / Math.max(1e-9, t1 - t0);
  const y = v => bottom - (bottom - 6) * v / top;
  for (const s of series) {
    ctx.strokeStyle = s.color; ctx.lineWidth = 2; ctx.beginPath();
    let drawing = false;
    for (const p of points) {
      const v = p[s.key];
      if (v === null || v === undefined) { drawing = false; continue; }
      if (drawing) ctx.lineTo(x(p.t), y(v)); else { ctx.moveTo(x(p.t), y(v)); drawing = true; }
    }
    ctx.stroke();
  }
  ctx.fillStyle = "#8b98a5";
  ctx.fillText(`last ${Math.round(t1 - t0)} s`, width - 60, height - 4);
}

function formatNumber(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  if (v >= 1000) return (v / 1000).toFixed(1) + "k";
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}
