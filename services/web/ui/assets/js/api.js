// The services' HTTP APIs, through the same `/api/<service>/…` routes a
// load balancer serves in production.

import * as session from './session.js';

/** A 4xx/5xx answer (or no answer: status 0), with the service's error body. */
export class ApiError extends Error {
  constructor(status, code, message, fields = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.fields = fields;
  }

  /** Worth trying again: no answer, or the service was briefly unavailable. */
  get transient() {
    return this.status === 0 || this.status === 502 || this.status === 503 || this.status === 504;
  }
}

/**
 * Calls `method path` (`path` under `/api/`), with the session's token.
 * Resolves to the parsed JSON answer (null for 204). With `keepalive` the
 * request outlives the page.
 * @throws {ApiError} on any failure; a 401 with a session also ends it.
 */
export async function call(method, path, body = undefined, { keepalive = false } = {}) {
  const headers = { accept: 'application/json' };
  const active = session.current();
  if (active) headers.authorization = `Bearer ${active.token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  let response;
  try {
    response = await fetch(`/api/${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      // Finishes even if the page goes away (a read marker sent on leaving).
      keepalive,
    });
  } catch (error) {
    throw new ApiError(0, 'unreachable', 'The server cannot be reached. Check your connection.');
  }
  if (response.status === 204) return null;
  const answer = await response.json().catch(() => null);
  if (response.ok) return answer;
  const error = answer?.error ?? {};
  if (response.status === 401 && active) session.end(session.EXPIRED);
  throw new ApiError(response.status, error.code ?? 'error', error.message ?? response.statusText, error.fields ?? null);
}

/** `call`, tried again with growing pauses while the failure is transient. */
export async function callRetrying(method, path, body, attempts = 6) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call(method, path, body);
    } catch (error) {
      if (!(error instanceof ApiError) || !error.transient || attempt >= attempts) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.min(250 * 2 ** attempt, 4000)));
    }
  }
}

/** A new random id for a message, so a post tried again is stored once. */
export function clientId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // Outside a secure context randomUUID is missing; random bytes are not.
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}
