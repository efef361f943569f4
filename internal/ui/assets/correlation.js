import { h, timeEl, utc, eventHref, put } from './dom.js';
import * as api from './api.js';

// The most events the timeline reads (10 pages of the API's maximum); a
// longer chain is shown to this point, and the view says so.
const MAX_PAGES = 10;

async function chainEvents(correlationID) {
  const events = [];
  let cursor = '';
  for (let i = 0; i < MAX_PAGES; i++) {
    const q = { correlation_id: correlationID, limit: '1000' };
    if (cursor) q.cursor = cursor;
    const page = await api.queryEvents(q);
    events.push(...page.data);
    if (!page.pagination.has_more) return { events, complete: true };
    cursor = page.pagination.next_cursor;
  }
  return { events, complete: false };
}

// order puts the events in chain order: chain_seq, which the writer
// assigns in storage order; events stored before the chain existed
// (without chain_seq) come first, by event_timestamp.
function order(events) {
  const ts = (e) => Date.parse(e.event_timestamp);
  return events.slice().sort((a, b) => {
    const sa = a.chain_seq ?? null;
    const sb = b.chain_seq ?? null;
    if (sa === null && sb === null) return ts(a) - ts(b) || (a.event_id < b.event_id ? -1 : 1);
    if (sa === null) return -1;
    if (sb === null) return 1;
    return sa - sb;
  });
}

function duration(ms) {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} days`;
}

// timeline lists the chain, marking gaps in chain_seq and late events: an
// event whose event_timestamp is earlier than the previous event's was
// stored after an event that happened later (a retry, a replay, a
// backfill): it is not tampering, the chain follows storage order.
function timeline(events) {
  const items = [];
  let prev = null;
  let gaps = 0;
  let late = 0;
  for (const e of events) {
    if (prev && prev.chain_seq != null && e.chain_seq != null && e.chain_seq > prev.chain_seq + 1) {
      const missing = e.chain_seq - prev.chain_seq - 1;
      gaps++;
      items.push(h('li', { class: 'gap' },
        h('span', { class: 'marker', 'aria-hidden': 'true' }, '⋯'),
        h('p', {}, h('strong', {}, 'Gap: '),
          `seq ${prev.chain_seq + 1}${missing > 1 ? '–' + (e.chain_seq - 1) : ''} not shown (${missing} event${missing === 1 ? '' : 's'}): `,
          'outside your namespaces, dropped by retention, or missing; the verification above tells whether the chain is intact.')));
    }
    const isLate = prev && Date.parse(e.event_timestamp) < Date.parse(prev.event_timestamp);
    if (isLate) late++;
    items.push(h('li', { class: 'step' + (isLate ? ' late' : ''), id: 'seq-' + (e.chain_seq ?? e.event_id) },
      h('span', { class: 'marker' }, e.chain_seq != null ? '#' + e.chain_seq : '–'),
      h('div', { class: 'step-body' },
        h('p', { class: 'step-head' },
          h('a', { href: eventHref(e.event_id) }, e.event_type), ' · ', e.event_action, ' · ',
          h('span', { class: 'outcome outcome-' + e.event_outcome }, e.event_outcome),
          isLate ? h('span', { class: 'tag tag-late' }, 'late') : null),
        h('p', { class: 'step-meta' }, timeEl(e.event_timestamp),
          e.actor_id ? ` · actor ${e.actor_id}` : '', e.namespace ? ` · ${e.namespace}` : '',
          isLate ? ` · ${duration(Date.parse(prev.event_timestamp) - Date.parse(e.event_timestamp))} before the previous event (stored later than it happened)` : ''))));
    prev = e;
  }
  return { list: h('ol', { class: 'timeline', id: 'timeline' }, items), gaps, late };
}

// anchor says which signed checkpoint the chain was held to.
function anchor(result) {
  const c = result.checkpoint;
  if (!c) return ' No signed checkpoint covers it yet.';
  return ` Held to signed checkpoint ${c.id} of ${utc(c.time)} (${c.covered} event${c.covered === 1 ? '' : 's'} covered).`;
}

// badge shows a verify-chain answer (SPEC 9.3): its verdict in words and
// an icon, never by colour alone.
function badge(result) {
  const range = result.total_events ? ` seq ${result.first_seq}–${result.last_seq}` : '';
  const retention = result.truncated_by_retention ? ' Its oldest events were dropped by retention; it verifies from the first one left.' : '';
  if (result.is_valid) {
    return h('div', { class: 'badge badge-ok', id: 'verify-badge' },
      h('span', { class: 'badge-icon', 'aria-hidden': 'true' }, '✓'),
      h('div', {},
        h('p', { class: 'badge-title' }, 'Chain verified'),
        h('p', {}, `${result.verified_events} of ${result.total_events} events verified,${range}.`, retention, anchor(result)),
        result.message ? h('p', { class: 'muted' }, result.message) : null));
  }
  const tampered = result.tampered_events || [];
  const more = result.more_tampered_events || 0;
  return h('div', { class: 'badge badge-bad', id: 'verify-badge' },
    h('span', { class: 'badge-icon', 'aria-hidden': 'true' }, '✗'),
    h('div', {},
      h('p', { class: 'badge-title' }, 'Not verified: the chain is broken' + (tampered.length ? ` at seq ${tampered[0].chain_seq}` : '')),
      h('p', {}, `${result.verified_events} of ${result.total_events} events verified,${range}.`, retention, anchor(result)),
      // The message repeats the first break, which the list names.
      result.message && !tampered.length ? h('p', {}, result.message) : null,
      tampered.length ? h('ul', {}, tampered.map((t) => h('li', {},
        // A break after the last stored event (a cut) has no event.
        t.event_id ? h('a', { href: eventHref(t.event_id) }, `seq ${t.chain_seq}, event ${t.event_id}`) : `seq ${t.chain_seq}`,
        `${t.kind ? ' (' + t.kind + ')' : ''}: ${t.message}`))) : null,
      more ? h('p', {}, `and ${more} more break${more === 1 ? '' : 's'} after these.`) : null));
}

function unverified(err, principal) {
  // The server verifies for a credential limited to namespaces only the
  // chains wholly inside them, and answers any other as not found.
  const limited = err.status === 404 && principal && principal.namespaces.length;
  return h('div', { class: 'badge badge-unknown', id: 'verify-badge' },
    h('span', { class: 'badge-icon', 'aria-hidden': 'true' }, '?'),
    h('div', {},
      h('p', { class: 'badge-title' }, 'Could not verify the chain'),
      h('p', {}, err.problem ? err.problem.detail : err.message),
      limited ? h('p', { id: 'verify-limited' }, `Your credential reads only the namespaces ${principal.namespaces.join(', ')}: `
        + 'a chain with events outside them is verified with a credential that reads every namespace, '
        + 'since its result would tell about events you may not read.') : null));
}

// markBreaks tags the timeline's events where verification found the
// chain broken, so the break is seen in its place too.
function markBreaks(list, result) {
  for (const t of result.tampered_events || []) {
    const step = list.querySelector(`#seq-${t.chain_seq}`);
    if (!step) continue;
    step.classList.add('broken');
    step.querySelector('.step-head').append(h('span', { class: 'tag tag-broken' }, `chain broken here${t.kind ? ' (' + t.kind + ')' : ''}`));
  }
}

export async function correlationView(ctx, rawID) {
  const id = decodeURIComponent(rawID);
  const verifyBox = h('section', { class: 'verify', 'aria-labelledby': 'verify-heading', 'aria-live': 'polite' },
    h('h2', { id: 'verify-heading', class: 'visually-hidden' }, 'Chain verification'),
    h('div', { class: 'badge badge-pending', id: 'verify-pending' }, h('p', {}, 'Verifying the chain…')));
  const holdBox = h('p', { class: 'hold-status', id: 'hold-status' });
  const body = h('section', { 'aria-labelledby': 'timeline-heading' }, h('h2', { id: 'timeline-heading' }, 'Timeline'),
    h('p', { class: 'muted' }, 'Loading…'));
  ctx.root.append(h('h1', { tabindex: '-1' }, 'Correlation ', h('code', {}, id)), verifyBox, holdBox, body);

  const verified = api.verifyChain(id).then(
    (r) => {
      put(verifyBox, verifyBox.firstChild, badge(r));
      return r;
    },
    (err) => {
      if (err instanceof api.ProblemError && err.status === 401) ctx.error(err);
      else put(verifyBox, verifyBox.firstChild, unverified(err, ctx.principal));
      return null;
    });
  api.listHolds().then(
    (res) => {
      const hold = res.holds.find((x) => x.correlation_id === id);
      put(holdBox, hold
        ? h('span', { class: 'tag tag-hold' }, `Legal hold since ${utc(hold.placed_at)} by ${hold.placed_by}: ${hold.reason}`)
        : 'No legal hold on this correlation. ',
      ctx.hasScope('audit:admin') ? h('a', { href: '#/holds?correlation_id=' + encodeURIComponent(id), id: 'manage-hold' }, hold ? 'Manage holds' : 'Place a legal hold') : null);
    },
    (err) => {
      if (err instanceof api.ProblemError && err.status === 401) return ctx.error(err);
      put(holdBox, h('span', { class: 'muted' }, 'Legal hold status unavailable: ', err.problem ? err.problem.detail : err.message));
    });

  let events, complete;
  try {
    ({ events, complete } = await chainEvents(id));
  } catch (err) {
    put(body, h('h2', { id: 'timeline-heading' }, 'Timeline'), h('p', { class: 'muted' }, 'The timeline cannot be shown (see above).'));
    throw err;
  }
  const ordered = order(events);
  const { list, gaps, late } = timeline(ordered);
  const chained = ordered.some((e) => e.chain_seq != null);
  put(body, h('h2', { id: 'timeline-heading' }, 'Timeline'),
    h('p', { id: 'timeline-summary' },
      ordered.length === 0 ? 'No event of this correlation is visible to you.' : `${ordered.length} event${ordered.length === 1 ? '' : 's'} in chain order`,
      chained ? ' (chain_seq, the order the writer stored them in)' : ' (by event_timestamp: these events carry no chain_seq)',
      `; ${gaps} gap${gaps === 1 ? '' : 's'}, ${late} late.`,
      complete ? '' : ` Only the newest ${ordered.length} are shown.`),
    list);
  ctx.announce(`${ordered.length} events in the timeline.`);
  const result = await verified;
  if (result) markBreaks(list, result);
}
