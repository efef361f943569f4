// The console's only way to the server: the public API, with the
// signed-in user's token in the Authorization header. The token is kept
// in this tab's sessionStorage, never in a cookie (so no other page can
// make the browser send it) and never in a URL (so it reaches no log,
// history or Referer).

const TOKEN_KEY = 'auditstream.console.token';

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(t) {
  sessionStorage.setItem(TOKEN_KEY, t);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

// ProblemError is a refused or failed call: its problem is the RFC 7807
// body (type, title, status, detail, field_errors...) or, for an answer
// that is not one, a stand-in saying what came back.
export class ProblemError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

// call sends one request to the API and returns the decoded JSON answer,
// or throws a ProblemError. query is an object or URLSearchParams; body
// is sent as JSON.
export async function call(method, path, { query, body } = {}) {
  const headers = { Accept: 'application/json, application/problem+json' };
  const t = token();
  if (t) headers.Authorization = 'Bearer ' + t;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const qs = query ? new URLSearchParams(query).toString() : '';
  let res;
  try {
    res = await fetch(path + (qs ? '?' + qs : ''), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
      redirect: 'error',
    });
  } catch (err) {
    throw new ProblemError(0, { title: 'Server unreachable', detail: `The request did not reach the server (${err.message}).` });
  }
  const text = await res.text();
  let data;
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    data = null;
  }
  if (!res.ok) {
    const problem = data && typeof data === 'object' && (data.detail || data.title)
      ? data
      : { title: res.statusText || 'Error', status: res.status, detail: `The server answered ${res.status} without a problem document.` };
    throw new ProblemError(res.status, problem);
  }
  if (data === null) {
    throw new ProblemError(res.status, { title: 'Unreadable answer', detail: 'The server answered with something that is not JSON.' });
  }
  return data;
}

export const whoami = () => call('GET', '/api/v1/audit/whoami');
export const queryEvents = (params) => call('GET', '/api/v1/audit/events', { query: params });
export const histogram = (params) => call('GET', '/api/v1/audit/events/histogram', { query: params });
export const getEvent = (id) => call('GET', '/api/v1/audit/events/' + encodeURIComponent(id));
export const verifyChain = (correlationID) => call('POST', '/api/v1/audit/verify-chain', { body: { correlation_id: correlationID } });
export const listHolds = () => call('GET', '/api/v1/audit/legal-hold');
export const placeHold = (correlationID, reason) => call('POST', '/api/v1/audit/legal-hold', { body: { correlation_id: correlationID, reason } });
export const releaseHold = (correlationID, releaseReason) =>
  call('DELETE', '/api/v1/audit/legal-hold/' + encodeURIComponent(correlationID), { body: { release_reason: releaseReason } });
