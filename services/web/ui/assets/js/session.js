// Who is logged in: the token accounts signed, kept in localStorage so a
// reload (or another tab) stays logged in, and dropped when it expires.
// The token is only ever sent in an Authorization header: never in a URL,
// so it stays out of logs and browser history.

const KEY = 'dozen.session';
let expiryTimer = null;
const listeners = new Set();

/** The session, or null. `{token, user: {id, username}, expiresAt}` (ms). */
export function current() {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY));
    if (saved && typeof saved.token === 'string' && saved.user) return saved;
  } catch {
    // An unreadable entry is no session.
  }
  return null;
}

/** Decodes a JWT's claims (no check: the services check it). */
export function claims(token) {
  const part = token.split('.')[1] ?? '';
  const base64 = part.replace(/-/g, '+').replace(/_/g, '/');
  const json = new TextDecoder().decode(Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)));
  return JSON.parse(json);
}

/** Keeps a new session from accounts' answer `{user, access_token}`. */
export function start(answer) {
  const { exp } = claims(answer.access_token);
  const session = {
    token: answer.access_token,
    user: { id: answer.user.id, username: answer.user.username },
    expiresAt: exp * 1000,
  };
  localStorage.setItem(KEY, JSON.stringify(session));
  watch(session);
  return session;
}

/** Ends the session; `reason` is shown on the login form. */
export function end(reason = null) {
  localStorage.removeItem(KEY);
  clearTimeout(expiryTimer);
  for (const listener of listeners) listener(reason);
}

/** Calls `listener(reason)` whenever the session ends. */
export function onEnd(listener) {
  listeners.add(listener);
}

export const EXPIRED = 'Your session has expired. Please log in again.';

/** Ends the session when its token expires; true if it already has. */
export function watch(session) {
  clearTimeout(expiryTimer);
  const left = session.expiresAt - Date.now();
  if (left <= 0) return true;
  // setTimeout cannot wait longer than ~24.8 days.
  expiryTimer = setTimeout(() => end(EXPIRED), Math.min(left, 2 ** 31 - 1));
  return false;
}

// Logged out in another tab: follow.
window.addEventListener('storage', (event) => {
  if (event.key === KEY && event.newValue === null) end(null);
});
