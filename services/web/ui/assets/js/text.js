// A message's text as pieces to render: plain text, links and @mentions.
// The same rules as chat's server side (services/chat/src/text.rs).

const URL_START = /https?:\/\//g;
const TRAILING = /[.,;:!?)\]}>"'*]+$/;
const NAME = /^[A-Za-z0-9_]+/;

/**
 * Splits `text` into `{kind: 'text'|'link'|'mention', text}` pieces, in order.
 * A mention is `@` + 3–32 of `A-Z a-z 0-9 _`, not inside a word, an e-mail
 * address or a link; a link keeps balanced brackets and loses the
 * punctuation that ends a sentence.
 */
export function pieces(text) {
  const out = [];
  const push = (kind, value) => {
    if (!value) return;
    const last = out[out.length - 1];
    if (kind === 'text' && last?.kind === 'text') last.text += value;
    else out.push({ kind, text: value });
  };
  let rest = text;
  while (rest) {
    URL_START.lastIndex = 0;
    const found = URL_START.exec(rest);
    const before = found ? rest.slice(0, found.index) : rest;
    for (const piece of mentions(before)) push(piece.kind, piece.text);
    if (!found) break;
    const end = rest.slice(found.index).search(/\s/);
    let link = end < 0 ? rest.slice(found.index) : rest.slice(found.index, found.index + end);
    link = trimLink(link);
    push('link', link);
    rest = rest.slice(found.index + link.length);
  }
  return out;
}

function trimLink(link) {
  for (;;) {
    const trailing = link.match(TRAILING);
    if (!trailing) return link;
    const last = link[link.length - 1];
    // "…/Rust_(language)": a closing bracket that closes one in the link stays.
    const pairs = { ')': '(', ']': '[', '}': '{', '>': '<' };
    if (pairs[last] && count(link, pairs[last]) >= count(link, last)) return link;
    link = link.slice(0, -1);
  }
}

function count(text, char) {
  return text.split(char).length - 1;
}

function mentions(text) {
  const out = [];
  let plain = '';
  for (let i = 0; i < text.length; i++) {
    const previous = text[i - 1] ?? ' ';
    if (text[i] === '@' && !/[\p{L}\p{N}_]/u.test(previous)) {
      const name = text.slice(i + 1).match(NAME);
      if (name && name[0].length >= 3 && name[0].length <= 32) {
        out.push({ kind: 'text', text: plain });
        out.push({ kind: 'mention', text: `@${name[0]}` });
        plain = '';
        i += name[0].length;
        continue;
      }
    }
    plain += text[i];
  }
  out.push({ kind: 'text', text: plain });
  return out;
}
