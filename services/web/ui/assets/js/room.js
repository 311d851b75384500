// One room: its messages (live, older ones on scrolling up), who is online
// and typing, and a composer. Every event is applied idempotently, by
// message id, so the first page, the live stream and a resumed stream may
// overlap without showing anything twice.

import { call, callRetrying, clientId } from './api.js';
import { h, fill, isWebUrl, time } from './dom.js';
import { follow } from './events.js';
import { pieces } from './text.js';

const PAGE = 50;
/** Send "typing" at most this often while the user types. */
const TYPING_EVERY_MS = 3000;
/** Mark read this long after the last thing seen, not on every event. */
const READ_AFTER_MS = 300;

export class RoomView {
  /**
   * @param {HTMLElement} main where the room is shown
   * @param {string} roomId
   * @param {{me: {id: string, username: string}, sidebar: import('./sidebar.js').Sidebar, onJoined: function()}} context
   */
  constructor(main, roomId, { me, sidebar, onJoined }) {
    this.main = main;
    this.roomId = roomId;
    this.me = me;
    this.sidebar = sidebar;
    this.onJoined = onJoined;
    /** @type {Map<string, object>} */
    this.messages = new Map();
    /** @type {Map<string, HTMLLIElement>} */
    this.items = new Map();
    /** Ids deleted while this view is open: a page read earlier cannot bring them back. */
    this.deleted = new Set();
    /** Own messages not yet confirmed, by client id. */
    this.pending = new Map();
    /** Who is typing: user id → {username, until}. */
    this.typing = new Map();
    this.olderCursor = null;
    this.seen = 0;
    this.readUpTo = 0;
    this.lastTypingSent = 0;
    this.closed = false;
    this.timers = [];
  }

  /** Loads the room and starts following it. */
  async open() {
    fill(this.main, h('p', { class: 'loading' }, 'Loading…'));
    const room = await call('GET', `chat/v1/rooms/${this.roomId}`);
    if (this.closed) return;
    this.room = room;
    document.title = `# ${room.name} · Dozen`;
    if (!room.joined) {
      this.showJoin();
      return;
    }
    this.build();
    this.seen = room.last_seq;
    this.readUpTo = room.last_read_seq;
    // Follow first, from the number read with the room: what happens while
    // the first page loads is not missed, and repeats are harmless.
    this.stream = follow(`chat/v1/rooms/${this.roomId}/events`, {
      lastEventId: String(room.last_seq),
      onEvent: (event) => this.apply(event),
      onStatus: (status, code) => this.showConnection(status, code),
    });
    const page = await call('GET', `chat/v1/rooms/${this.roomId}/messages?limit=${PAGE}`);
    if (this.closed) return;
    this.addPage(page);
    if (this.messages.size === 0 && this.pending.size === 0) {
      this.list.before(h('p', { class: 'empty first-words' }, 'No messages yet. Say hello!'));
    }
    this.scrollToEnd();
    this.markRead();
    this.timers.push(setInterval(() => this.renderTyping(), 1000));
    this.onVisible = () => this.markRead();
    this.onLeave = () => this.sendRead(true);
    document.addEventListener('visibilitychange', this.onVisible);
    window.addEventListener('focus', this.onVisible);
    window.addEventListener('pagehide', this.onLeave);
    this.composerText.focus();
  }

  /** Stops following; the view is being replaced (or the page left). */
  close() {
    if (this.closed) return;
    this.closed = true;
    this.stream?.stop();
    for (const timer of this.timers) clearInterval(timer);
    clearTimeout(this.readTimer);
    if (this.onVisible) {
      document.removeEventListener('visibilitychange', this.onVisible);
      window.removeEventListener('focus', this.onVisible);
      window.removeEventListener('pagehide', this.onLeave);
    }
    this.sendRead(true);
  }

  showJoin() {
    const join = h('button', {
      type: 'button',
      class: 'primary',
      on: {
        click: async () => {
          join.disabled = true;
          await call('POST', `chat/v1/rooms/${this.roomId}/members`, {});
          await this.sidebar.load();
          this.onJoined();
          this.open();
        },
      },
    }, `Join # ${this.room.name}`);
    fill(this.main, h('section', { class: 'room-join' },
      h('h2', {}, `# ${this.room.name}`),
      h('p', {}, `${this.room.members} ${this.room.members === 1 ? 'member' : 'members'}. Join to read and post.`),
      join));
    join.focus();
  }

  build() {
    const name = this.room.name;
    this.presence = h('p', { class: 'presence', 'aria-live': 'polite' });
    this.connection = h('p', { class: 'connection', role: 'status', hidden: true });
    this.olderButton = h('button', { type: 'button', class: 'older small', hidden: true, on: { click: () => this.loadOlder() } }, 'Load older messages');
    this.list = h('ol', { class: 'messages', 'aria-live': 'polite', 'aria-relevant': 'additions', 'aria-label': `Messages in ${name}` });
    this.scroller = h('div', { class: 'scroller', on: { scroll: () => this.onScroll() } }, this.olderButton, this.list);
    this.typingLine = h('p', { class: 'typing', 'aria-live': 'polite' });
    this.composerText = h('textarea', {
      id: 'composer-text',
      rows: 1,
      maxlength: 4000,
      placeholder: `Message # ${name}`,
      'aria-describedby': 'composer-hint',
      on: { keydown: (event) => this.onComposerKey(event), input: () => this.onTyping() },
    });
    const composer = h('form', { class: 'composer', on: { submit: (event) => { event.preventDefault(); this.send(); } } },
      h('label', { for: 'composer-text', class: 'visually-hidden' }, `Message # ${name}`),
      this.composerText,
      h('button', { type: 'submit', class: 'primary' }, 'Send'));
    fill(this.main, h('section', { class: 'room', 'aria-labelledby': 'room-title' },
      h('header', { class: 'room-head' },
        h('a', { href: '#/', class: 'back' }, '← Rooms'),
        h('h2', { id: 'room-title', dir: 'auto' }, `# ${name}`),
        this.presence,
        this.connection),
      this.scroller,
      this.typingLine,
      composer,
      h('p', { class: 'hint', id: 'composer-hint' }, 'Enter to send, Shift+Enter for a new line.')));
  }

  // --- events -------------------------------------------------------------

  apply(event) {
    if (this.closed) return;
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    const stick = this.nearEnd();
    switch (event.event) {
      case 'message':
        this.typing.delete(data.author.id);
        this.renderTyping();
        this.upsert(data);
        break;
      case 'message_edited':
        this.upsert(data);
        break;
      case 'message_deleted':
        this.remove(data.message_id);
        break;
      case 'card':
        this.addCard(data.message_id, data.card);
        break;
      case 'presence':
        this.showPresence(data);
        break;
      case 'reset':
        // The stream could not resume from where this view was: read the room afresh.
        this.reload();
        break;
      case 'typing':
        if (data.user.id !== this.me.id) {
          this.typing.set(data.user.id, { username: data.user.username, until: Date.now() + data.expires_in_ms });
          this.renderTyping();
        }
        break;
      default:
        break;
    }
    if (event.id !== null) {
      this.seen = Math.max(this.seen, Number(event.id));
      if (document.visibilityState === 'visible') this.visibleUpTo = this.seen;
      this.markRead();
    }
    if (stick) this.scrollToEnd();
  }

  /** Forgets what is shown and reads the newest page again (the stream goes on). */
  async reload() {
    const page = await call('GET', `chat/v1/rooms/${this.roomId}/messages?limit=${PAGE}`);
    if (this.closed) return;
    this.messages.clear();
    this.items.clear();
    for (const item of [...this.list.children]) if (item.dataset.pending === undefined) item.remove();
    this.addPage(page);
    this.scrollToEnd();
  }

  addPage(page) {
    // Oldest first, so each goes at the end or in its place.
    for (const message of [...page.messages].reverse()) {
      if (!this.messages.has(message.id) && !this.deleted.has(message.id)) this.upsert(message);
    }
    this.olderCursor = page.next_before;
    this.olderButton.hidden = this.olderCursor === null;
  }

  /**
   * Shows `message` (new, or a newer version). While its author edits it
   * here, a version from the stream waits, unless `force`.
   */
  upsert(message, force = false) {
    if (this.deleted.has(message.id)) return;
    if (message.client_id && this.pending.has(message.client_id)) {
      this.pending.get(message.client_id).item.remove();
      this.pending.delete(message.client_id);
    }
    this.messages.set(message.id, message);
    this.scroller.querySelector('.first-words')?.remove();
    const item = this.renderMessage(message);
    const old = this.items.get(message.id);
    if (old) {
      if (!force && old.querySelector('form.edit')) return;
      old.replaceWith(item);
    } else {
      this.list.insertBefore(item, this.placeFor(message.seq));
    }
    this.items.set(message.id, item);
  }

  /** The item to insert a message of number `seq` before (null: at the end). */
  placeFor(seq) {
    for (const item of this.list.children) {
      if (item.dataset.pending !== undefined || Number(item.dataset.seq) > seq) return item;
    }
    return null;
  }

  remove(id) {
    this.deleted.add(id);
    this.messages.delete(id);
    this.items.get(id)?.remove();
    this.items.delete(id);
  }

  addCard(messageId, card) {
    const message = this.messages.get(messageId);
    if (!message || message.cards.some((c) => c.url === card.url)) return;
    message.cards = [...message.cards, card];
    this.upsert(message);
  }

  // --- showing ------------------------------------------------------------

  renderMessage(message) {
    const mine = message.author.id === this.me.id;
    const text = this.renderText(message.text);
    const mentionsMe = text.querySelector('.mention-me') !== null;
    return h('li', {
      class: ['message', mine && 'mine', mentionsMe && 'mentions-me'].filter(Boolean).join(' '),
      dataset: { id: message.id, seq: String(message.seq) },
    },
    h('div', { class: 'meta' },
      h('span', { class: 'author' }, message.author.username),
      ' ',
      time(message.sent_at),
      message.edited_at && h('span', { class: 'edited', title: `edited ${new Date(message.edited_at).toLocaleString()}` }, ' (edited)')),
    text,
    message.cards.length > 0 && h('div', { class: 'cards' }, message.cards.map((card) => this.renderCard(card))),
    mine && h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'small quiet', 'aria-label': 'Edit message', on: { click: () => this.edit(message.id) } }, 'Edit'),
      h('button', { type: 'button', class: 'small quiet', 'aria-label': 'Delete message', on: { click: (event) => this.confirmDelete(message.id, event.currentTarget) } }, 'Delete')));
  }

  renderText(text) {
    // dir=auto and CSS isolation: a message's direction controls reorder only itself.
    const paragraph = h('p', { class: 'text', dir: 'auto' });
    const me = `@${this.me.username}`.toLowerCase();
    for (const piece of pieces(text)) {
      if (piece.kind === 'link' && isWebUrl(piece.text)) {
        paragraph.append(h('a', { href: piece.text, target: '_blank', rel: 'noopener noreferrer nofollow ugc' }, piece.text));
      } else if (piece.kind === 'mention') {
        paragraph.append(piece.text.toLowerCase() === me
          ? h('mark', { class: 'mention mention-me' }, piece.text)
          : h('span', { class: 'mention' }, piece.text));
      } else {
        paragraph.append(piece.text);
      }
    }
    return paragraph;
  }

  renderCard(card) {
    const link = isWebUrl(card.url);
    const image = card.image && isWebUrl(card.image)
      ? h('img', { src: card.image, alt: '', loading: 'lazy', decoding: 'async', referrerpolicy: 'no-referrer', width: 80, height: 80 })
      : null;
    return h('article', { class: 'card' },
      image,
      h('div', { class: 'card-body' },
        link ? h('a', { class: 'card-title', dir: 'auto', href: card.url, target: '_blank', rel: 'noopener noreferrer nofollow ugc' }, card.title)
          : h('span', { class: 'card-title', dir: 'auto' }, card.title),
        card.description && h('p', { class: 'card-description', dir: 'auto' }, card.description)));
  }

  showPresence(presence) {
    const names = presence.online.map((u) => u.username);
    const shown = names.slice(0, 5).join(', ') + (names.length > 5 ? ` and ${names.length - 5} more` : '');
    fill(this.presence, h('span', { class: 'dot', 'aria-hidden': 'true' }), `${presence.count} online`, names.length ? `: ${shown}` : '');
  }

  renderTyping() {
    if (!this.typingLine) return;
    const now = Date.now();
    for (const [id, who] of this.typing) if (who.until <= now) this.typing.delete(id);
    const names = [...this.typing.values()].map((w) => w.username).sort();
    let text = '';
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = 'Several people are typing…';
    if (this.typingLine.textContent !== text) this.typingLine.textContent = text;
  }

  showConnection(status, code) {
    if (!this.connection) return;
    if (status === 'live') {
      this.connection.hidden = true;
      this.connection.textContent = '';
    } else if (status === 'reconnecting') {
      this.connection.hidden = false;
      this.connection.textContent = 'Reconnecting…';
    } else if (status === 'closed') {
      this.connection.hidden = false;
      this.connection.textContent = code === 403 ? 'You are no longer a member of this room.' : 'This room is gone.';
    }
  }

  nearEnd() {
    return !this.scroller || this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight < 80;
  }

  scrollToEnd() {
    if (this.scroller) this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  // --- reading --------------------------------------------------------------

  /** Tells chat what was seen, once the page is visible and things settle. */
  markRead() {
    if (this.closed || document.visibilityState !== 'visible' || this.seen <= this.readUpTo) return;
    clearTimeout(this.readTimer);
    this.readTimer = setTimeout(() => this.sendRead(false), READ_AFTER_MS);
  }

  /** Sends the read marker now, if it moved; `leaving`: even as the page goes. */
  async sendRead(leaving) {
    clearTimeout(this.readTimer);
    this.readTimer = null;
    // Only what was shown while the page was visible counts as read.
    const seq = this.shownUpTo();
    if (seq <= this.readUpTo) return;
    try {
      const answer = await call('PUT', `chat/v1/rooms/${this.roomId}/read`, { seq }, { keepalive: leaving });
      this.readUpTo = Math.max(this.readUpTo, answer.last_read_seq);
      if (!leaving) this.sidebar.setUnread(this.roomId, answer.unread);
    } catch {
      // Tried again with the next event or the next look.
    }
  }

  /** The last number seen while the page was visible. */
  shownUpTo() {
    if (document.visibilityState === 'visible') this.visibleUpTo = this.seen;
    return this.visibleUpTo ?? 0;
  }

  onScroll() {
    if (this.scroller.scrollTop < 120 && this.olderCursor !== null && !this.loadingOlder) this.loadOlder();
  }

  async loadOlder() {
    if (this.olderCursor === null || this.loadingOlder) return;
    this.loadingOlder = true;
    try {
      const page = await call('GET', `chat/v1/rooms/${this.roomId}/messages?limit=${PAGE}&before=${this.olderCursor}`);
      const from = this.scroller.scrollHeight - this.scroller.scrollTop;
      this.addPage(page);
      // Keep what the reader was looking at where it was.
      this.scroller.scrollTop = this.scroller.scrollHeight - from;
    } finally {
      this.loadingOlder = false;
    }
  }

  // --- writing --------------------------------------------------------------

  onComposerKey(event) {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      this.send();
    }
  }

  onTyping() {
    const now = Date.now();
    if (!this.composerText.value.trim() || now - this.lastTypingSent < TYPING_EVERY_MS) return;
    this.lastTypingSent = now;
    call('POST', `chat/v1/rooms/${this.roomId}/typing`).catch(() => {});
  }

  /** Shows the message at once, then posts it (tried again, with the same client id, until stored). */
  send(retryOf = null) {
    const text = retryOf ? retryOf.text : this.composerText.value.trim();
    if (!text) return;
    const id = retryOf ? retryOf.clientId : clientId();
    if (!retryOf) {
      this.composerText.value = '';
      this.lastTypingSent = 0;
    }
    const item = h('li', { class: 'message mine pending', dataset: { pending: '' } },
      h('div', { class: 'meta' }, h('span', { class: 'author' }, this.me.username), ' ', h('span', { class: 'status' }, 'sending…')),
      this.renderText(text));
    retryOf?.item.replaceWith(item);
    if (!retryOf) this.list.append(item);
    this.scroller.querySelector('.first-words')?.remove();
    const entry = { clientId: id, text, item };
    this.pending.set(id, entry);
    this.scrollToEnd();
    callRetrying('POST', `chat/v1/rooms/${this.roomId}/messages`, { text, client_id: id })
      .then((message) => this.upsert(message))
      .catch((error) => {
        if (!this.pending.has(id)) return;
        const problem = error.fields?.text?.join('; ') ?? error.message;
        const discard = () => {
          this.pending.delete(id);
          item.remove();
        };
        fill(item.querySelector('.status'), `not sent: ${problem} `,
          // Worth trying again only if the server could not be reached.
          error.transient && h('button', { type: 'button', class: 'small', on: { click: () => this.send(entry) } }, 'Retry'),
          ' ',
          h('button', {
            type: 'button',
            class: 'small',
            on: {
              click: () => {
                discard();
                this.composerText.value = text;
                this.composerText.focus();
              },
            },
          }, 'Edit'),
          ' ',
          h('button', { type: 'button', class: 'small', on: { click: discard } }, 'Discard'));
        item.classList.add('failed');
      });
  }

  edit(id) {
    const message = this.messages.get(id);
    const item = this.items.get(id);
    if (!message || !item) return;
    const area = h('textarea', { class: 'edit-text', 'aria-label': 'Edit message', maxlength: 4000, rows: 2, value: message.text });
    const problem = h('p', { class: 'field-problem', role: 'alert' });
    const cancel = () => {
      this.upsert(this.messages.get(id) ?? message, true);
      this.items.get(id)?.querySelector('button')?.focus();
    };
    const save = async () => {
      const text = area.value.trim();
      if (!text) return;
      try {
        this.upsert(await call('PATCH', `chat/v1/rooms/${this.roomId}/messages/${id}`, { text }), true);
        this.items.get(id)?.querySelector('button')?.focus();
      } catch (error) {
        problem.textContent = error.fields?.text?.join('; ') ?? error.message;
      }
    };
    area.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        save();
      } else if (event.key === 'Escape') {
        cancel();
      }
    });
    const form = h('form', { class: 'edit', on: { submit: (event) => { event.preventDefault(); save(); } } },
      area, problem,
      h('div', { class: 'inline' },
        h('button', { type: 'submit', class: 'small primary' }, 'Save'),
        h('button', { type: 'button', class: 'small', on: { click: cancel } }, 'Cancel')));
    item.querySelector('.text').replaceWith(form);
    item.querySelector('.actions')?.remove();
    area.focus();
    area.setSelectionRange(area.value.length, area.value.length);
  }

  confirmDelete(id, button) {
    const actions = button.parentElement;
    const no = h('button', { type: 'button', class: 'small', on: { click: () => this.upsert(this.messages.get(id), true) } }, 'Keep it');
    const yes = h('button', {
      type: 'button',
      class: 'small danger',
      on: {
        click: async () => {
          yes.disabled = true;
          try {
            await call('DELETE', `chat/v1/rooms/${this.roomId}/messages/${id}`);
            this.remove(id);
            this.composerText.focus();
          } catch (error) {
            fill(actions, `Not deleted: ${error.message}`);
          }
        },
      },
    }, 'Delete it');
    fill(actions, h('span', { class: 'confirm' }, 'Delete this message? '), yes, ' ', no);
    yes.focus();
  }
}
