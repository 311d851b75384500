// The rooms: those joined, each with its unread count, a form to create
// one, and the others, to join.

import { call, ApiError } from './api.js';
import { h, fill } from './dom.js';

export class Sidebar {
  /**
   * @param {HTMLElement} nav
   * @param {{onRoomsChanged: function()}} hooks called after this user joins or creates a room.
   */
  constructor(nav, { onRoomsChanged }) {
    this.nav = nav;
    this.onRoomsChanged = onRoomsChanged;
    /** @type {Map<string, object>} rooms by id, as chat lists them. */
    this.rooms = new Map();
    this.currentId = null;
    this.problem = '';
  }

  /** Reads the rooms again and shows them. */
  async load() {
    const answer = await call('GET', 'chat/v1/rooms');
    this.rooms = new Map(answer.rooms.map((room) => [room.id, room]));
    this.render();
  }

  room(id) {
    return this.rooms.get(id);
  }

  /** The room open in the main area (highlighted, its count not shown). */
  setCurrent(id) {
    this.currentId = id;
    this.render();
  }

  /** A room's count changed (from the activity stream, or read here). */
  setUnread(id, unread) {
    const room = this.rooms.get(id);
    if (!room || room.unread === unread) return;
    room.unread = unread;
    this.render();
  }

  render() {
    const byName = (a, b) => a.name.localeCompare(b.name);
    const joined = [...this.rooms.values()].filter((r) => r.joined).sort(byName);
    const others = [...this.rooms.values()].filter((r) => !r.joined).sort(byName);
    const focused = document.activeElement?.id;
    fill(
      this.nav,
      h('h2', { id: 'your-rooms' }, 'Your rooms'),
      joined.length
        ? h('ul', { class: 'room-list', 'aria-labelledby': 'your-rooms' }, joined.map((room) => this.joinedItem(room)))
        : h('p', { class: 'empty' }, 'No rooms yet: create one or join one below.'),
      this.createForm(),
      h('h2', { id: 'discover' }, 'Discover'),
      others.length
        ? h('ul', { class: 'room-list discover', 'aria-labelledby': 'discover' }, others.map((room) => this.otherItem(room)))
        : h('p', { class: 'empty' }, joined.length ? 'You are in every room.' : 'No rooms yet.'),
    );
    if (focused) document.getElementById(focused)?.focus();
  }

  joinedItem(room) {
    const current = room.id === this.currentId;
    const unread = current ? 0 : room.unread;
    return h('li', {},
      h('a', {
        href: `#/rooms/${room.id}`,
        class: current ? 'room-link current' : 'room-link',
        'aria-current': current ? 'page' : false,
        dataset: { roomId: room.id },
      },
      h('span', { class: 'room-name', dir: 'auto' }, `# ${room.name}`),
      unread > 0 && h('span', { class: 'badge', 'aria-label': `${unread} unread` }, unread > 99 ? '99+' : String(unread))));
  }

  otherItem(room) {
    const join = h('button', {
      type: 'button',
      class: 'small',
      'aria-label': `Join ${room.name}`,
      on: { click: () => this.join(room, join) },
    }, 'Join');
    return h('li', { class: 'discover-item' },
      h('span', { class: 'room-name', dir: 'auto' }, `# ${room.name}`),
      h('span', { class: 'members' }, `${room.members} ${room.members === 1 ? 'member' : 'members'}`),
      join);
  }

  createForm() {
    const input = h('input', { id: 'new-room-name', name: 'name', maxlength: 64, required: true, autocomplete: 'off' });
    const problem = h('p', { class: 'field-problem', id: 'new-room-problem', role: 'alert' }, this.problem);
    const form = h('form', {
      class: 'new-room',
      on: {
        submit: async (event) => {
          event.preventDefault();
          const name = input.value.trim();
          if (!name) return;
          try {
            const room = await call('POST', 'chat/v1/rooms', { name });
            this.problem = '';
            await this.load();
            this.onRoomsChanged();
            location.hash = `#/rooms/${room.id}`;
          } catch (error) {
            this.problem = error instanceof ApiError && error.code === 'room_name_taken'
              ? 'A room with that name exists.'
              : (error.fields?.name?.join('; ') ?? error.message);
            this.render();
            document.getElementById('new-room-name')?.focus();
          }
        },
      },
    },
    h('label', { for: 'new-room-name' }, 'New room'),
    h('div', { class: 'inline' }, input, h('button', { type: 'submit', class: 'small' }, 'Create')),
    problem);
    return form;
  }

  async join(room, button) {
    button.disabled = true;
    try {
      await call('POST', `chat/v1/rooms/${room.id}/members`, {});
      await this.load();
      this.onRoomsChanged();
      location.hash = `#/rooms/${room.id}`;
    } catch (error) {
      button.disabled = false;
      this.problem = error.message;
      this.render();
    }
  }
}
