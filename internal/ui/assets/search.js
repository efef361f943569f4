import { h, timeEl, eventHref, correlationHref, put } from './dom.js';
import * as api from './api.js';
import { chart, chartPlaceholder } from './chart.js';

// The time ranges offered besides a custom one; the value is the API's own
// relative since (that long before now), so the URL reads like the query.
const PRESETS = [
  ['15m', 'Last 15 minutes'],
  ['1h', 'Last hour'],
  ['24h', 'Last 24 hours'],
  ['7d', 'Last 7 days'],
  ['30d', 'Last 30 days'],
  ['', 'All time'],
];
const PAGE_SIZES = ['25', '50', '100', '250'];
const DAY_MS = 24 * 3600 * 1000;
// A relative bound of the API: a duration or days (30m, 1h30m, 1.5d).
const RELATIVE = /^[0-9.]+(d|[0-9.hmsuµn]*[hms])$/;

// paging is the stack of cursors of the pages before the one shown ('' is
// the first page), for the filters of key: "Newer" pops it, "Older"
// pushes. pending is the cursor the console itself just navigated to; any
// other cursor in the URL is a browser Back/Forward or a shared link.
let paging = { key: null, stack: [], pending: null, unknown: false };

function syncPaging(params) {
  const rest = new URLSearchParams(params);
  rest.delete('cursor');
  rest.sort();
  const key = rest.toString();
  const cursor = params.get('cursor') || '';
  if (paging.key !== key) paging = { key, stack: [], pending: null, unknown: false };
  if (cursor === paging.pending) {
    // Moved by the console: the stack is already right.
  } else if (cursor === '') {
    paging.stack = [];
    paging.unknown = false;
  } else if (paging.stack.lastIndexOf(cursor) >= 0) {
    paging.stack = paging.stack.slice(0, paging.stack.lastIndexOf(cursor));
  } else {
    // A shared link to a later page: the pages before it are not known,
    // so "Newer" goes back to the first.
    paging.stack = [''];
    paging.unknown = true;
  }
  paging.pending = null;
  return cursor;
}

// toLocalInput turns a since/until value into a datetime-local value
// (UTC, to the second), when it is an absolute one.
function toLocalInput(v) {
  const m = /^(\d{4}-\d{2}-\d{2})(?:T(\d{2}:\d{2})(:\d{2})?)?/.exec(v || '');
  if (!m) return '';
  return `${m[1]}T${m[2] || '00:00'}${m[3] || ':00'}`;
}

// fromLocalInput reads a datetime-local value as UTC.
function fromLocalInput(v) {
  if (!v) return '';
  return (v.length === 16 ? v + ':00' : v) + 'Z';
}

// relativeMs reads a relative bound (30m, 1h30m, 7d, 1.5d) as milliseconds.
function relativeMs(v) {
  if (v.endsWith('d')) return parseFloat(v) * DAY_MS;
  const unit = { h: 3600e3, m: 60e3, s: 1e3, ms: 1, us: 1e-3, 'µs': 1e-3, ns: 1e-6 };
  let ms = 0;
  for (const [, n, u] of v.matchAll(/([0-9.]+)(ms|us|µs|ns|h|m|s)/g)) ms += parseFloat(n) * unit[u];
  return ms;
}

// instant reads a since/until value as the API does: relative to now,
// RFC 3339, or UTC without an offset.
function instant(v, now) {
  if (RELATIVE.test(v)) return now - relativeMs(v);
  const utc = v.includes('T') && !/([zZ]|[+-]\d{2}:\d{2})$/.test(v) ? v + 'Z' : v;
  return Date.parse(utc);
}

// chartRange picks the histogram's range for a search: the search's own
// when it spans at most a day, else its last 24 hours (the API's bound).
function chartRange(since, until, now = Date.now()) {
  const start = since ? instant(since, now) : -Infinity;
  const end = until ? instant(until, now) : now;
  if (since && !(end - start > DAY_MS)) {
    return { params: until ? { since, until } : { since }, clipped: false };
  }
  if (!until) return { params: { since: '24h' }, clipped: true };
  return { params: { since: new Date(end - DAY_MS).toISOString(), until }, clipped: true };
}

function filterField(f, params) {
  const id = 'f-' + f.name;
  const value = params.get(f.name) || '';
  let input;
  if (f.values) {
    input = h('select', { id, name: f.name },
      h('option', { value: '' }, 'Any'),
      f.values.map((v) => h('option', { value: v, selected: v === value }, v)));
  } else {
    input = h('input', { id, name: f.name, type: 'text', value, autocomplete: 'off', spellcheck: 'false',
      list: f.suggest ? id + '-list' : null, placeholder: f.placeholder || null });
  }
  return h('div', { class: 'field' },
    h('label', { for: id }, f.label),
    input,
    f.suggest ? h('datalist', { id: id + '-list' }, f.suggest.map((v) => h('option', { value: v }))) : null);
}

export async function searchView(ctx, queryString) {
  const params = new URLSearchParams(queryString);
  const cursor = syncPaging(params);
  const since = params.get('since') || '';
  const until = params.get('until') || '';
  const presetValues = PRESETS.map(([v]) => v);
  let range = 'custom';
  if (!until && presetValues.includes(since)) range = since;
  const options = PRESETS.slice();
  if (!until && since && RELATIVE.test(since) && !presetValues.includes(since)) {
    options.push([since, `Last ${since}`]);
    range = since;
  }

  const rangeSelect = h('select', { id: 'range', name: 'range' },
    options.map(([v, label]) => h('option', { value: v, selected: v === range }, label)),
    h('option', { value: 'custom', selected: range === 'custom' }, 'Custom range (UTC)'));
  const sinceInput = h('input', { id: 'since-at', type: 'datetime-local', step: '1', value: range === 'custom' ? toLocalInput(since) : '' });
  const untilInput = h('input', { id: 'until-at', type: 'datetime-local', step: '1', value: range === 'custom' ? toLocalInput(until) : '' });
  const custom = h('div', { class: 'custom-range', id: 'custom-range' },
    h('div', { class: 'field' }, h('label', { for: 'since-at' }, 'From (UTC, inclusive)'), sinceInput),
    h('div', { class: 'field' }, h('label', { for: 'until-at' }, 'To (UTC, inclusive)'), untilInput));
  custom.hidden = range !== 'custom';
  rangeSelect.addEventListener('change', () => {
    custom.hidden = rangeSelect.value !== 'custom';
  });
  const limit = params.get('limit') || '50';
  const limitSelect = h('select', { id: 'limit', name: 'limit' },
    (PAGE_SIZES.includes(limit) ? PAGE_SIZES : PAGE_SIZES.concat(limit)).map((v) => h('option', { value: v, selected: v === limit }, v)));

  const form = h('form', { id: 'search-form', class: 'card', action: '#', novalidate: true },
    h('fieldset', { class: 'filters' }, h('legend', {}, 'Filters (all must match)'),
      ctx.filters.map((f) => filterField(f, params))),
    h('fieldset', { class: 'when' }, h('legend', {}, 'Time range'),
      h('div', { class: 'field' }, h('label', { for: 'range' }, 'Events from'), rangeSelect),
      custom,
      h('div', { class: 'field' }, h('label', { for: 'limit' }, 'Events per page'), limitSelect)),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', id: 'search' }, 'Search'),
      h('button', { type: 'button', class: 'secondary', id: 'reset', onclick: () => ctx.navigate('#/search') }, 'Clear')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const f of ctx.filters) {
      const v = form.elements[f.name].value.trim();
      if (v) q.set(f.name, v);
    }
    if (rangeSelect.value === 'custom') {
      if (sinceInput.value) q.set('since', fromLocalInput(sinceInput.value));
      if (untilInput.value) q.set('until', fromLocalInput(untilInput.value));
    } else if (rangeSelect.value) {
      q.set('since', rangeSelect.value);
    }
    if (limitSelect.value !== '50') q.set('limit', limitSelect.value);
    ctx.navigate('#/search' + (q.toString() ? '?' + q : ''));
  });

  const chartBox = chartPlaceholder('Loading…');
  const results = h('section', { class: 'results', 'aria-labelledby': 'results-heading' },
    h('h2', { id: 'results-heading' }, 'Events'), h('p', { class: 'muted' }, 'Loading…'));
  ctx.root.append(h('h1', { tabindex: '-1' }, 'Search events'), form, chartBox, results);

  const q = new URLSearchParams(params);
  const filterParams = new URLSearchParams();
  for (const f of ctx.filters) if (params.get(f.name)) filterParams.set(f.name, params.get(f.name));
  const cr = chartRange(since, until);
  const chartParams = new URLSearchParams(filterParams);
  for (const [k, v] of Object.entries(cr.params)) chartParams.set(k, v);
  api.histogram(chartParams).then(
    (hist) => chartBox.replaceWith(chart(hist, cr.clipped)),
    (err) => {
      if (err instanceof api.ProblemError && err.status === 401) return ctx.error(err);
      chartBox.replaceWith(chartPlaceholder('Chart unavailable: ' + (err.problem ? err.problem.detail : err.message)));
    });

  let page;
  try {
    page = await api.queryEvents(q);
  } catch (err) {
    put(results, h('h2', { id: 'results-heading' }, 'Events'), h('p', { class: 'muted' }, 'No results: the search was refused (see above).'));
    throw err;
  }
  renderResults(ctx, results, params, page, cursor);
}

function renderResults(ctx, results, params, page, cursor) {
  const p = page.pagination;
  const n = page.data.length;
  const pageNo = paging.stack.length + 1;
  const first = paging.unknown ? null : (pageNo - 1) * p.limit + 1;
  const total = p.total_exact ? String(p.total) : `at least ${p.total}`;
  const summary = n === 0
    ? 'No event matches.'
    : first === null
      ? `${n} events of ${total}, newest first.`
      : `Events ${first}–${first + n - 1} of ${total}, newest first.`;

  const go = (c) => {
    const q = new URLSearchParams(params);
    if (c) q.set('cursor', c);
    else q.delete('cursor');
    paging.pending = c;
    ctx.navigate('#/search?' + q);
  };
  const newer = h('button', { type: 'button', id: 'newer', class: 'secondary', disabled: paging.stack.length === 0,
    onclick: () => go(paging.stack.pop()) }, '← Newer');
  const older = h('button', { type: 'button', id: 'older', class: 'secondary', disabled: !p.has_more || !p.next_cursor,
    onclick: () => {
      paging.stack.push(cursor);
      go(p.next_cursor);
    } }, 'Older →');
  const pager = h('nav', { class: 'pager', 'aria-label': 'Result pages' }, newer,
    h('span', { class: 'page-no', id: 'page-no' }, paging.unknown ? 'A later page' : `Page ${pageNo}`), older);

  const table = n === 0 ? null : h('table', { class: 'events', id: 'events' },
    h('caption', { class: 'visually-hidden' }, 'Matching events, newest first'),
    h('thead', {}, h('tr', {}, ['Time (UTC)', 'Event type', 'Category', 'Action', 'Outcome', 'Correlation ID', 'Actor', 'Resource', 'Namespace']
      .map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, page.data.map((e) => h('tr', {},
      h('td', { class: 'nowrap' }, h('a', { href: eventHref(e.event_id), 'aria-label': `Event ${e.event_type} at ${e.event_timestamp}` }, timeEl(e.event_timestamp))),
      h('td', {}, e.event_type),
      h('td', {}, e.event_category),
      h('td', {}, e.event_action),
      h('td', {}, h('span', { class: 'outcome outcome-' + e.event_outcome }, e.event_outcome)),
      h('td', { class: 'id' }, h('a', { href: correlationHref(e.correlation_id) }, e.correlation_id)),
      h('td', {}, e.actor_id ?? ''),
      h('td', { class: 'id' }, [e.resource_type, e.resource_id].filter((v) => v != null).join(' / ')),
      h('td', {}, e.namespace ?? '')))));

  put(results, h('h2', { id: 'results-heading' }, 'Events'), h('p', { id: 'summary' }, summary), table, n ? pager : null);
  ctx.announce(summary);
}
