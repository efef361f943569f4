import { h, s, utc } from './dom.js';

const W = 960;
const H = 120;
const PAD_TOP = 8;
const PAD_BOTTOM = 20;

function hhmm(iso) {
  return new Date(iso).toISOString().slice(11, 16);
}

// ticks label the time axis at its ends and quarters.
function ticks(hist) {
  const from = Date.parse(hist.since);
  const span = Date.parse(hist.until) - from;
  return [0, 0.25, 0.5, 0.75, 1].map((f) => s('text', {
    class: 'tick', x: (f * W + (f === 0 ? 2 : f === 1 ? -2 : 0)).toFixed(1), y: H - 4,
    'text-anchor': f === 0 ? 'start' : f === 1 ? 'end' : 'middle',
  }, hhmm(new Date(from + f * span).toISOString())));
}

// chartPlaceholder is the chart's box while it loads, or when it cannot
// be drawn: as tall as the chart, so that nothing below moves when the
// numbers arrive (a click aimed at the pager would land elsewhere).
export function chartPlaceholder(text) {
  return h('figure', { class: 'card chart', id: 'chart' },
    h('figcaption', {}, h('span', { class: 'chart-title' }, 'Events per minute'), ' ', h('span', { class: 'muted' }, text)),
    s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart-svg', 'aria-hidden': 'true' }));
}

// chart draws a histogram answer as bars, one per minute, as SVG built in
// the page (no inline markup or style, so the CSP holds). The numbers are
// also given as text for those who do not see the chart.
export function chart(hist, clipped) {
  const buckets = hist.buckets;
  const peak = buckets.reduce((m, b) => Math.max(m, b.count), 0);
  const peakAt = buckets.find((b) => b.count === peak);
  const bw = W / buckets.length;
  const plot = H - PAD_TOP - PAD_BOTTOM;
  const bars = [];
  buckets.forEach((b, i) => {
    if (b.count === 0) return;
    const bh = Math.max(1, (b.count / peak) * plot);
    bars.push(s('rect', {
      class: 'bar', x: (i * bw).toFixed(2), y: (PAD_TOP + plot - bh).toFixed(2),
      width: Math.max(bw - (bw > 3 ? 1 : 0), 0.5).toFixed(2), height: bh.toFixed(2),
    }, s('title', {}, `${utc(b.start)}: ${b.count} event${b.count === 1 ? '' : 's'}`)));
  });
  const from = utc(hist.since);
  const to = utc(hist.until);
  const label = `Events per minute from ${from} to ${to}: ${hist.total} in all` +
    (peak ? `, at most ${peak} in a minute (${utc(peakAt.start)}).` : '.');
  const graphic = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': label, class: 'chart-svg', id: 'chart-svg' },
    s('line', { class: 'axis', x1: 0, y1: H - PAD_BOTTOM + 0.5, x2: W, y2: H - PAD_BOTTOM + 0.5 }),
    bars,
    ticks(hist),
    s('text', { class: 'tick', x: 2, y: PAD_TOP + 10 }, peak ? `${peak}/min` : 'no events'));
  return h('figure', { class: 'card chart', id: 'chart' },
    h('figcaption', {},
      h('span', { class: 'chart-title' }, 'Events per minute'), ' ',
      h('span', { class: 'muted' }, `${from} – ${to}`, clipped ? ' (the last 24 hours of the range: the chart covers a day at most)' : ''),
      ' · ', h('strong', { id: 'chart-total' }, String(hist.total)), ' events'),
    graphic);
}
