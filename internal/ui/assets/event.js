import { h, eventHref, correlationHref, put } from './dom.js';
import * as api from './api.js';

// copyText puts text on the clipboard: the Clipboard API where the page
// may use it, else a selected textarea and the copy command; false when
// neither worked (the caller then says how to copy by hand).
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch {
      // Denied (no focus, or a policy): try the old way.
    }
  }
  const area = h('textarea', { class: 'offscreen', readonly: true, 'aria-hidden': 'true' });
  area.value = text;
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch {
    ok = false;
  }
  area.remove();
  return ok;
}

// copyButton copies what text() returns, and says so.
export function copyButton(ctx, id, label, text, fallbackTarget) {
  return h('button', { type: 'button', class: 'secondary', id, onclick: async () => {
    if (await copyText(text())) {
      ctx.announce(`${label}: copied to the clipboard.`);
      flash(document.getElementById(id), 'Copied');
    } else {
      // Select the text so Ctrl+C (⌘C) copies it.
      const range = document.createRange();
      range.selectNodeContents(fallbackTarget);
      const sel = getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      ctx.announce('The browser refused the clipboard: the text is selected, press Ctrl+C to copy it.');
    }
  } }, label);
}

// flash shows text on button for a moment, then its label again.
function flash(button, text) {
  if (!button) return;
  button.dataset.label ??= button.textContent;
  button.textContent = text;
  clearTimeout(button.flashTimer);
  button.flashTimer = setTimeout(() => {
    button.textContent = button.dataset.label;
  }, 1500);
}

// The fields the writer sets to chain the event (SPEC 9.1), shown apart
// from what the event says: they are how verification checks it.
const CHAIN_FIELDS = ['chain_seq', 'previous_event_hash', 'event_hash', 'hash_key_id', 'hash_version'];

function value(k, v) {
  if (v === null || v === undefined) return h('span', { class: 'null' }, 'null');
  if (k === 'correlation_id') return h('a', { href: correlationHref(v) }, v);
  if (k === 'parent_event_id') return h('a', { href: eventHref(v) }, v);
  if (typeof v === 'object') return h('code', {}, JSON.stringify(v));
  return String(v);
}

export async function eventView(ctx, rawID) {
  const id = decodeURIComponent(rawID);
  const heading = h('h1', { tabindex: '-1' }, 'Event ', h('code', {}, id));
  const loading = h('p', { class: 'muted' }, 'Loading…');
  ctx.root.append(heading, loading);
  let ev;
  try {
    ev = await api.getEvent(id);
  } catch (err) {
    loading.textContent = 'The event cannot be shown (see above).';
    throw err;
  }
  const data = JSON.stringify(ev.event_data, null, 2);
  const pre = h('pre', { class: 'json', id: 'event-data', tabindex: '0', 'aria-label': 'event_data as JSON' }, h('code', {}, data));
  // Every field the server returned is shown, those it may add later
  // too: all but the chain's and event_data go in the first list.
  const entries = Object.entries(ev).filter(([k]) => k !== 'event_data');
  const fields = entries.filter(([k]) => !CHAIN_FIELDS.includes(k));
  const chain = entries.filter(([k]) => CHAIN_FIELDS.includes(k));
  const list = (id, items) => h('dl', { class: 'fields', id }, items.map(([k, v]) => [h('dt', {}, k), h('dd', {}, value(k, v))]));
  put(ctx.root,
    heading,
    h('p', { class: 'lede' }, h('strong', {}, ev.event_type), ' · ', ev.event_action, ' · ',
      h('span', { class: 'outcome outcome-' + ev.event_outcome }, ev.event_outcome),
      ev.is_sensitive ? h('span', { class: 'tag tag-sensitive', id: 'sensitive' }, 'sensitive') : null, ' · ',
      h('a', { href: correlationHref(ev.correlation_id), id: 'to-correlation' }, 'Correlation timeline')),
    h('section', { class: 'card', 'aria-labelledby': 'fields-heading' },
      h('h2', { id: 'fields-heading' }, 'Fields'),
      list('fields', fields)),
    h('section', { class: 'card', 'aria-labelledby': 'chain-heading' },
      h('h2', { id: 'chain-heading' }, 'Hash chain'),
      h('p', { class: 'help' }, ev.chain_seq == null
        ? 'The writer stored this event before it chained events, or without integrity keys: nothing links it to its correlation\'s chain.'
        : `Position ${ev.chain_seq} in the chain of its correlation_id, linked to the event before it by previous_event_hash. `
          + 'The correlation timeline verifies the whole chain against the keys and the signed checkpoints.'),
      list('chain-fields', chain)),
    h('section', { class: 'card', 'aria-labelledby': 'data-heading' },
      h('div', { class: 'section-head' },
        h('h2', { id: 'data-heading' }, 'event_data'),
        h('div', { class: 'actions' },
          copyButton(ctx, 'copy-data', 'Copy event_data', () => data, pre),
          copyButton(ctx, 'copy-event', 'Copy the whole event', () => JSON.stringify(ev, null, 2), pre))),
      pre));
  ctx.announce(`Event ${ev.event_type} of ${ev.event_timestamp}.`);
}
