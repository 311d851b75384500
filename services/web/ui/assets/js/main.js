// The app: logged out, the login and signup forms; logged in, the rooms
// and the open room. The address says which (`#/rooms/<id>`), so a reload
// comes back to the same room.

import * as session from './session.js';
import * as auth from './auth.js';
import { h, fill } from './dom.js';
import { follow } from './events.js';
import { Sidebar } from './sidebar.js';
import { RoomView } from './room.js';

const main = document.getElementById('main');
const nav = document.getElementById('sidebar');
const account = document.getElementById('account');

let sidebar = null;
let view = null;
let activity = null;
let notice = null;

session.onEnd((reason) => {
  stop();
  notice = reason;
  if (location.hash !== '#/login') location.hash = '#/login';
  else route();
});
window.addEventListener('hashchange', route);
// Rooms others made meanwhile show up when the window is looked at again,
// and every half minute while it is.
let listedAt = Date.now();
function listAgain() {
  if (!sidebar || document.visibilityState !== 'visible' || Date.now() - listedAt < 5000) return;
  listedAt = Date.now();
  sidebar.load().catch(() => {});
}
window.addEventListener('focus', listAgain);
setInterval(listAgain, 30000);
// Logged in in another tab: follow.
window.addEventListener('storage', (event) => {
  if (event.key === 'dozen.session' && event.newValue && !sidebar) route();
});

const saved = session.current();
if (saved && session.watch(saved)) session.end(session.EXPIRED);
else route();

async function route() {
  const active = session.current();
  if (!active) {
    showLoggedOut(location.hash === '#/signup');
    return;
  }
  try {
    if (!sidebar) await start(active);
    const match = location.hash.match(/^#\/rooms\/([0-9a-fA-F-]{36})$/);
    openRoom(active, match ? match[1] : null);
  } catch (error) {
    if (session.current()) fill(main, h('p', { class: 'problem', role: 'alert' }, `Something went wrong: ${error.message}. Reload to try again.`));
  }
}

function showLoggedOut(signup) {
  document.title = signup ? 'Sign up · Dozen' : 'Log in · Dozen';
  fill(account);
  auth.show(main, {
    signup,
    notice,
    onSession: () => {
      notice = null;
      if (location.hash === '#/' || location.hash === '') route();
      else location.hash = '#/';
    },
  });
}

async function start(active) {
  fill(account,
    h('span', { class: 'who' }, 'Signed in as ', h('strong', {}, active.user.username)),
    h('button', { type: 'button', class: 'small', on: { click: () => session.end(null) } }, 'Log out'));
  sidebar = new Sidebar(nav, { onRoomsChanged: followActivity });
  nav.hidden = false;
  await sidebar.load();
  followActivity();
}

/** Unread counts of every room joined, live; reopened after joining one. */
function followActivity() {
  activity?.stop();
  activity = follow('chat/v1/activity', {
    onEvent: (event) => {
      if (event.event !== 'unread' || !sidebar) return;
      const unread = JSON.parse(event.data);
      sidebar.setUnread(unread.room_id, unread.unread);
      if (view?.roomId === unread.room_id && unread.unread > 0) view.markRead();
    },
  });
}

function openRoom(active, roomId) {
  if (view && view.roomId === roomId) return;
  view?.close();
  view = null;
  sidebar.setCurrent(roomId);
  // A room the list does not know yet (made elsewhere, joined in another tab).
  if (roomId && !sidebar.room(roomId)) sidebar.load().catch(() => {});
  document.body.classList.toggle('in-room', roomId !== null);
  if (!roomId) {
    document.title = 'Dozen';
    fill(main, h('section', { class: 'welcome' },
      h('h2', {}, `Hello, ${active.user.username}`),
      h('p', {}, 'Pick a room on the left, or create one.')));
    return;
  }
  view = new RoomView(main, roomId, { me: active.user, sidebar, onJoined: followActivity });
  view.open().catch((error) => {
    if (!session.current()) return;
    fill(main, h('section', { class: 'welcome' },
      h('h2', {}, error.status === 404 ? 'No such room' : 'The room could not be opened'),
      h('p', {}, error.message),
      h('p', {}, h('a', { href: '#/' }, 'Back to your rooms'))));
  });
}

function stop() {
  view?.close();
  view = null;
  activity?.stop();
  activity = null;
  sidebar = null;
  nav.hidden = true;
  fill(nav);
  fill(account);
  document.body.classList.remove('in-room');
}
