// The console's shell: the router (views live in the URL's fragment, so
// a view and its query can be bookmarked and shared, and the server, which
// only serves files, never needs to know them), the principal, and the
// error and status regions every view reports through.
import { h, put } from './dom.js';
import * as api from './api.js';
import { signInView } from './signin.js';
import { searchView } from './search.js';
import { eventView } from './event.js';
import { correlationView } from './correlation.js';
import { holdsView } from './holds.js';

const routes = [
  { name: 'search', pattern: /^#\/search(?:\?(.*))?$/, view: searchView },
  { name: 'event', pattern: /^#\/event\/([^?]+)$/, view: eventView },
  { name: 'correlation', pattern: /^#\/correlation\/([^?]+)$/, view: correlationView },
  { name: 'holds', pattern: /^#\/holds(?:\?(.*))?$/, view: holdsView },
];

const main = document.getElementById('main');
const alertRegion = document.getElementById('alert');
const statusRegion = document.getElementById('status');
const who = document.getElementById('who');
const nav = document.getElementById('nav');

let principal = null;
let filters = null;
let lastView = null;
// Where a user who had to sign in first was going.
let returnTo = null;

function showError(err) {
  const p = err instanceof api.ProblemError ? err.problem : { title: 'Error', detail: String(err && err.message ? err.message : err) };
  const fieldErrors = p.field_errors && typeof p.field_errors === 'object' ? Object.entries(p.field_errors) : [];
  put(alertRegion, 
    h('p', {}, h('strong', {}, (p.title || 'Error') + ': '), p.detail || ''),
    fieldErrors.length ? h('ul', {}, fieldErrors.map(([k, v]) => h('li', {}, h('code', {}, k), ' ', v))) : null,
  );
}

function clearError() {
  put(alertRegion);
}

// announce tells assistive technology what a view did ("25 events").
function announce(text) {
  statusRegion.textContent = text;
}

function renderWho() {
  if (!principal) {
    put(who);
    nav.hidden = true;
    return;
  }
  nav.hidden = false;
  const ns = principal.namespaces.length ? principal.namespaces.join(', ') : 'all';
  put(who, 
    h('span', { class: 'who-name', id: 'who-name' }, principal.name),
    h('span', { class: 'who-scopes' }, principal.scopes.join(' '), ' · namespaces: ', ns),
    h('button', { type: 'button', class: 'link-button', id: 'sign-out', onclick: signOut }, 'Sign out'),
  );
}

function signOut() {
  api.clearToken();
  principal = null;
  renderWho();
  clearError();
  announce('Signed out.');
  location.hash = '#/signin';
}

// navigate shows hash; the same hash again renders again (a repeated
// search), which a hashchange would not.
function navigate(hash) {
  if (location.hash === hash) {
    render();
  } else {
    location.hash = hash;
  }
}

function markNav(name) {
  for (const a of nav.querySelectorAll('a')) {
    if (a.dataset.view === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

async function render() {
  const hash = location.hash;
  if (!hash.startsWith('#/')) {
    history.replaceState(null, '', '#/search');
    return render();
  }
  if (!api.token()) {
    principal = null;
    renderWho();
    if (hash !== '#/signin') returnTo = hash;
    return show('signin', signInView, []);
  }
  if (!principal) {
    try {
      principal = await api.whoami();
    } catch (err) {
      if (err instanceof api.ProblemError && err.status === 401) return sessionEnded(err);
      // The server is unreachable or failing: the session is still good.
      put(main, h('h1', { tabindex: '-1' }, 'auditstream console'),
        h('p', {}, 'The server could not say who you are, so nothing is shown. ',
          h('a', { href: location.hash, onclick: (e) => { e.preventDefault(); render(); } }, 'Try again'), '.'));
      return showError(err);
    }
    renderWho();
  }
  if (hash === '#/signin') {
    history.replaceState(null, '', '#/search');
    return render();
  }
  for (const r of routes) {
    const m = hash.match(r.pattern);
    if (m) return show(r.name, r.view, m.slice(1));
  }
  clearError();
  put(main, h('h1', { tabindex: '-1' }, 'Not found'), h('p', {}, 'The console has no view at ', h('code', {}, hash), '. ', h('a', { href: '#/search' }, 'Search events'), '.'));
}

// sessionEnded sends a user whose token was refused back to sign in.
function sessionEnded(err) {
  api.clearToken();
  principal = null;
  renderWho();
  if (location.hash !== '#/signin') returnTo = location.hash;
  history.replaceState(null, '', '#/signin');
  show('signin', signInView, []);
  showError(err);
}

// refused shows a 403's problem detail, then asks the server again what
// the token may do: the scopes the console drew its controls for were
// read at sign-in, and the tokens file may have changed since (it is
// re-read without a restart). When they did change, the view is drawn
// again with the controls the token holds now, the refusal still shown.
async function refused(err) {
  showError(err);
  let now;
  try {
    now = await api.whoami();
  } catch {
    return;
  }
  const grants = (p) => JSON.stringify([p.scopes, p.namespaces]);
  if (!principal || grants(now) === grants(principal)) return;
  principal = now;
  renderWho();
  await render();
  showError(err);
}

// show renders a view into a fresh root: an answer that arrives after
// the user moved on lands in a detached element and shows nowhere.
function show(name, view, args) {
  const focused = document.activeElement && document.activeElement.id;
  const root = h('div', { class: 'view view-' + name });
  put(main, root);
  markNav(name);
  const changed = lastView !== name;
  // On the page's first view the focus stays at the top of the page, so
  // the first Tab reaches the skip link.
  const first = lastView === null;
  lastView = name;
  clearError();
  const ctx = {
    root,
    principal,
    filters,
    navigate,
    announce: (text) => root.isConnected && announce(text),
    clearError: () => root.isConnected && clearError(),
    showProblem: (err) => root.isConnected && showError(err),
    // A refused token ends the session, a refused scope reads the
    // principal again; any other problem is shown.
    error: (err) => {
      if (!root.isConnected) return;
      if (err instanceof api.ProblemError && err.status === 401) sessionEnded(err);
      else if (err instanceof api.ProblemError && err.status === 403) refused(err);
      else showError(err);
    },
    signedIn: (p) => {
      principal = p;
      renderWho();
      const to = returnTo && returnTo !== '#/signin' ? returnTo : '#/search';
      returnTo = null;
      navigate(to);
    },
    hasScope: (scope) => !!principal && principal.scopes.includes(scope),
  };
  // A view the user moves to takes the focus to its heading at once, so a screen reader
  // starts there (and typing into the view is never interrupted); a view
  // redrawn in place (paging) gives the focus back to the control that
  // had it, unless the user has moved on meanwhile.
  const focusID = !changed && focused;
  const done = Promise.resolve(view(ctx, ...args.map((a) => (a === undefined ? '' : a)))).catch(ctx.error);
  const heading = root.querySelector('h1');
  document.title = (heading ? heading.textContent + ' · ' : '') + 'auditstream console';
  if (changed && !first && heading) heading.focus();
  if (focusID) {
    done.finally(() => {
      const again = root.isConnected && document.getElementById(focusID);
      const idle = document.activeElement === document.body || document.activeElement === null;
      if (again && idle && !again.disabled) again.focus();
    });
  }
}

document.getElementById('skip-link').addEventListener('click', (e) => {
  // The fragment holds the view: move the focus without touching it.
  e.preventDefault();
  main.focus();
});

window.addEventListener('hashchange', render);

fetch('filters.json', { cache: 'no-cache' })
  .then((res) => {
    if (!res.ok) throw new Error(`filters.json: HTTP ${res.status}`);
    return res.json();
  })
  .then((data) => {
    filters = data.filters;
    render();
  })
  .catch(showError);
