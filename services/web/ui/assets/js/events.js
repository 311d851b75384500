// Live streams (Server-Sent Events) read with fetch, not EventSource:
// EventSource cannot send an Authorization header, and a token in the URL
// would end up in logs. A dropped stream is reopened with Last-Event-ID
// after a growing pause, so nothing is missed and nothing repeats; the
// caller is told when it is live and when it is reconnecting.

import * as session from './session.js';

/** Nothing at all for this long (the server sends a comment every 10 s): the stream is dead. */
const SILENCE_MS = 25000;

/**
 * Follows the stream at `/api/<path>`.
 * @param {string} path
 * @param {{lastEventId?: string|null, onEvent: function({id, event, data}), onStatus: function(string, number=)}} options
 *   `onStatus('live')`, `onStatus('reconnecting')`, or `onStatus('closed', httpStatus)` when
 *   the server refuses it for good (403, 404).
 * @returns {{stop: function(), lastEventId: function(): string|null}}
 */
export function follow(path, { lastEventId = null, onEvent, onStatus = () => {} }) {
  let stopped = false;
  let controller = null;
  let lastId = lastEventId;

  async function run() {
    for (let attempt = 0; !stopped; attempt++) {
      if (attempt > 0) {
        onStatus('reconnecting');
        const pause = Math.min(400 * 2 ** (attempt - 1), 5000) * (0.75 + Math.random() / 2);
        await new Promise((resolve) => setTimeout(resolve, pause));
        if (stopped) return;
      }
      controller = new AbortController();
      const active = session.current();
      if (!active) return;
      const headers = { accept: 'text/event-stream', authorization: `Bearer ${active.token}` };
      if (lastId !== null) headers['last-event-id'] = String(lastId);
      try {
        const response = await fetch(`/api/${path}`, { headers, signal: controller.signal, cache: 'no-store' });
        if (response.status === 401) {
          session.end(session.EXPIRED);
          return;
        }
        if ([400, 403, 404].includes(response.status)) {
          onStatus('closed', response.status);
          return;
        }
        if (!response.ok || !response.body) continue;
        attempt = 0;
        onStatus('live');
        await read(response.body, controller, (event) => {
          if (event.id !== null) lastId = event.id;
          onEvent(event);
        });
      } catch {
        // Dropped, refused or aborted: the loop decides.
      }
    }
  }

  run();
  return {
    stop() {
      stopped = true;
      controller?.abort();
    },
    lastEventId: () => lastId,
  };
}

/** Parses the event stream (WHATWG HTML, "Server-sent events": the interpretation rules) until it ends. */
async function read(body, controller, dispatch) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let event = { id: null, event: 'message', data: [] };
  let watchdog = setTimeout(() => controller.abort(), SILENCE_MS);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      clearTimeout(watchdog);
      watchdog = setTimeout(() => controller.abort(), SILENCE_MS);
      buffer += value;
      const lines = buffer.split(/\r\n|\r|\n/);
      // A lone \r at the end may be the first half of \r\n: keep it for the next chunk.
      buffer = lines.pop();
      for (const line of lines) {
        if (line === '') {
          if (event.data.length > 0) dispatch({ id: event.id, event: event.event, data: event.data.join('\n') });
          event = { id: null, event: 'message', data: [] };
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? '' : line.slice(colon + 1);
        if (text.startsWith(' ')) text = text.slice(1);
        if (field === 'data') event.data.push(text);
        else if (field === 'event') event.event = text;
        else if (field === 'id' && !text.includes('\0')) event.id = text;
      }
    }
  } finally {
    clearTimeout(watchdog);
  }
}
