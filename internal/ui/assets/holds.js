import { h, utc, correlationHref, put } from './dom.js';
import * as api from './api.js';

function releaseRow(ctx, hold, cols, refresh) {
  const id = 'release-reason-' + hold.correlation_id.replace(/[^A-Za-z0-9_-]/g, '_');
  const reason = h('textarea', { id, name: 'release_reason', required: true, rows: '2', maxlength: '1000' });
  const form = h('form', { class: 'release-form', action: '#', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: id }, `Why release the hold on ${hold.correlation_id}?`), reason),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', class: 'danger', id: 'confirm-release' }, 'Release hold'),
      h('button', { type: 'button', class: 'secondary', onclick: () => refresh() }, 'Cancel')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const r = await api.releaseHold(hold.correlation_id, reason.value.trim());
      ctx.clearError();
      await refresh(`Hold on ${r.correlation_id} released by ${r.released_by} (${r.events_released} events).`);
    } catch (err) {
      ctx.error(err);
      reason.focus();
    }
  });
  setTimeout(() => reason.focus());
  return h('tr', { class: 'release-row' }, h('td', { colspan: String(cols) }, form));
}

export async function holdsView(ctx, queryString) {
  const params = new URLSearchParams(queryString);
  const admin = ctx.hasScope('audit:admin');
  const list = h('section', { 'aria-labelledby': 'holds-heading' }, h('h2', { id: 'holds-heading' }, 'Holds in force'), h('p', { class: 'muted' }, 'Loading…'));
  const notice = h('p', { class: 'notice', id: 'hold-notice', role: 'status' });
  ctx.root.append(h('h1', { tabindex: '-1' }, 'Legal holds'),
    h('p', {}, 'A legal hold keeps every event of a correlation_id, stored or still to come, from retention until it is released. Placing and releasing are themselves recorded as audit events.'),
    notice);

  if (admin) {
    const corr = h('input', { id: 'hold-correlation', name: 'correlation_id', type: 'text', required: true, value: params.get('correlation_id') || '', maxlength: '255', autocomplete: 'off', spellcheck: 'false' });
    const reason = h('textarea', { id: 'hold-reason', name: 'reason', required: true, rows: '2', maxlength: '1000' });
    const form = h('form', { class: 'card', id: 'place-hold-form', action: '#', novalidate: true },
      h('h2', {}, 'Place a legal hold'),
      h('div', { class: 'field' }, h('label', { for: 'hold-correlation' }, 'Correlation ID'), corr),
      h('div', { class: 'field' }, h('label', { for: 'hold-reason' }, 'Reason (case, ticket, who asked)'), reason),
      h('div', { class: 'actions' }, h('button', { type: 'submit', id: 'place-hold' }, 'Place hold')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      try {
        const r = await api.placeHold(corr.value.trim(), reason.value.trim());
        ctx.clearError();
        reason.value = '';
        await refresh(`Hold placed on ${r.correlation_id} by ${r.placed_by} (${r.events_affected} events).`);
      } catch (err) {
        ctx.error(err);
      }
    });
    ctx.root.append(form);
  } else {
    ctx.root.append(h('p', { class: 'notice notice-info', id: 'admin-needed' },
      `Placing and releasing legal holds needs the audit:admin scope, which ${ctx.principal.name} does not hold. `,
      'You can see the holds in force.'));
  }
  ctx.root.append(list);

  async function refresh(message) {
    if (message) {
      notice.textContent = message;
      ctx.announce(message);
    }
    let res;
    try {
      res = await api.listHolds();
    } catch (err) {
      put(list, h('h2', { id: 'holds-heading' }, 'Holds in force'), h('p', { class: 'muted' }, 'The holds could not be listed (see above).'));
      throw err;
    }
    const cols = admin ? 6 : 5;
    const rows = [];
    for (const hold of res.holds) {
      const tr = h('tr', { 'data-correlation': hold.correlation_id },
        h('td', {}, h('a', { href: correlationHref(hold.correlation_id) }, hold.correlation_id)),
        h('td', { class: 'num' }, String(hold.events_affected)),
        h('td', {}, hold.placed_by),
        h('td', { class: 'nowrap' }, h('time', { datetime: hold.placed_at, title: hold.placed_at }, utc(hold.placed_at))),
        h('td', {}, hold.reason),
        admin ? h('td', {}, h('button', { type: 'button', class: 'secondary release', 'aria-label': `Release the hold on ${hold.correlation_id}`,
          onclick: () => {
            // One release form at a time.
            for (const open of list.querySelectorAll('.release-row')) open.remove();
            tr.after(releaseRow(ctx, hold, cols, refresh));
          } }, 'Release…')) : null);
      rows.push(tr);
    }
    put(list, h('h2', { id: 'holds-heading' }, 'Holds in force'),
      h('p', { id: 'holds-summary' }, res.total === 0 ? 'No legal hold is in force.' : `${res.total} hold${res.total === 1 ? '' : 's'} in force.`),
      res.total === 0 ? null : h('table', { class: 'holds', id: 'holds' },
        h('thead', {}, h('tr', {}, ['Correlation ID', 'Events', 'Placed by', 'Placed at (UTC)', 'Reason'].concat(admin ? ['Action'] : [])
          .map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, rows)));
  }
  await refresh();
}
