// DOM building for the views. Text always goes in as text nodes (never
// innerHTML), so stored event fields cannot become markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// h('a', {href: '#/x', onclick: fn}, 'text', child) builds an HTML
// element; attributes that are null, undefined or false are left out.
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

// put replaces el's children, skipping null, undefined and false as h
// does (replaceChildren would show them as text).
export function put(el, ...children) {
  el.replaceChildren();
  return build(el, {}, children);
}

// s is h for SVG elements.
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

// utc renders an RFC 3339 instant as "2025-12-13 02:00:01 UTC"; the stored
// value, to the microsecond, is in the element's title and in the detail
// view.
export function utc(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, '').replace(/Z$/, '') + ' UTC';
}

// timeEl is a <time> showing utc(iso), with the exact value as its
// datetime and title.
export function timeEl(iso) {
  return h('time', { datetime: iso, title: iso }, utc(iso));
}

export function eventHref(id) {
  return '#/event/' + encodeURIComponent(id);
}

export function correlationHref(id) {
  return '#/correlation/' + encodeURIComponent(id);
}
