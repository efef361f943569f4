import { h } from './dom.js';
import * as api from './api.js';

// signInView asks for an API token and checks it with whoami before
// keeping it. The form is never submitted to the server: the token goes
// only into sessionStorage and the Authorization header.
export function signInView(ctx) {
  const input = h('input', {
    // No name: were the form ever submitted natively (a script that did
    // not load), the token would not be part of the request.
    id: 'token', type: 'password', required: true, autocomplete: 'off',
    spellcheck: 'false', 'aria-describedby': 'token-help',
  });
  const button = h('button', { type: 'submit', id: 'sign-in' }, 'Sign in');
  const form = h('form', { id: 'sign-in-form', class: 'card narrow', method: 'post', action: '#', novalidate: true },
    h('div', { class: 'field' },
      h('label', { for: 'token' }, 'API token'),
      input,
      h('p', { class: 'help', id: 'token-help' },
        'A token from the tokens file or your identity provider. It stays in this browser tab only ',
        '(session storage: closing the tab signs you out) and is sent to this server in the Authorization header, ',
        'never in a URL or a cookie. Under ', h('code', {}, 'make dev'), ' it is the development token the command printed.')),
    button);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const t = input.value.trim();
    if (!t) {
      ctx.error(new api.ProblemError(0, { title: 'Token required', detail: 'Enter an API token to sign in.' }));
      input.focus();
      return;
    }
    button.disabled = true;
    api.setToken(t);
    try {
      const p = await api.whoami();
      input.value = '';
      ctx.announce(`Signed in as ${p.name}.`);
      ctx.signedIn(p);
    } catch (err) {
      api.clearToken();
      button.disabled = false;
      // Not ctx.error: a refused token here is the answer, not a session
      // that ended.
      ctx.showProblem(err);
      input.select();
    }
  });
  ctx.root.append(
    h('h1', { tabindex: '-1' }, 'Sign in'),
    h('p', {}, 'Search and verify the audit trail, and manage legal holds, with the scopes of your token.'),
    form);
}
