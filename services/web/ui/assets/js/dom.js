// Building the page without HTML strings: every piece of text becomes a
// text node, so nothing a user typed can ever turn into markup. (The page's
// Trusted Types policy would refuse an HTML string anyway.)

/**
 * Creates an element.
 * @param {string} tag
 * @param {object} [props] `class`, `on` (event handlers), `dataset`, and
 *   attributes; `false`/`null`/`undefined` values are left out.
 * @param {...(Node|string|number|null|false|Array)} children strings become text nodes.
 */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === false || value === null || value === undefined) continue;
    if (name === 'class') element.className = value;
    else if (name === 'on') for (const [event, handler] of Object.entries(value)) element.addEventListener(event, handler);
    else if (name === 'dataset') Object.assign(element.dataset, value);
    else if (name === 'value') element.value = value;
    else if (name === 'href') element.setAttribute('href', safeHref(value));
    else if (name === 'src') element.setAttribute('src', safeHref(value));
    else element.setAttribute(name, value === true ? '' : String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces everything inside `element` with `children`. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

/** `url` if it is an http(s) URL or a path of this site; `#` otherwise (no `javascript:`). */
export function safeHref(url) {
  const text = String(url);
  if (text.startsWith('#') || (text.startsWith('/') && !text.startsWith('//'))) return text;
  return isWebUrl(text) ? text : '#';
}

/** Whether `url` is an absolute http or https URL. */
export function isWebUrl(url) {
  try {
    const parsed = new URL(url);
    return parsed.protocol === 'https:' || parsed.protocol === 'http:';
  } catch {
    return false;
  }
}

/** A short local time for an RFC 3339 timestamp, and the full one for a tooltip. */
export function time(rfc3339) {
  const date = new Date(rfc3339);
  const short = date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return h('time', { datetime: rfc3339, title: date.toLocaleString() }, short);
}
