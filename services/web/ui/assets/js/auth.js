// Logging in and signing up.

import { call, ApiError } from './api.js';
import { h, fill } from './dom.js';
import * as session from './session.js';

/**
 * Shows the login form (or, with `signup`, the signup form) in `main`.
 * @param {HTMLElement} main
 * @param {{signup?: boolean, notice?: string|null, onSession: function(object)}} options
 */
export function show(main, { signup = false, notice = null, onSession }) {
  const title = signup ? 'Create your account' : 'Log in';
  const problem = h('p', { class: 'problem', role: 'alert', id: 'auth-problem' }, notice ?? '');
  const field = (id, label, attributes) =>
    h('div', { class: 'field' },
      h('label', { for: id }, label),
      h('input', { id, name: id, required: true, 'aria-describedby': `${id}-problem`, ...attributes }),
      h('p', { class: 'field-problem', id: `${id}-problem` }));
  const fields = signup
    ? [
        field('username', 'Username', { autocomplete: 'username', minlength: 3, maxlength: 32, pattern: '[a-z0-9_]{3,32}', autocapitalize: 'none', spellcheck: 'false' }),
        h('p', { class: 'hint', id: 'username-hint' }, '3–32 lowercase letters, digits or _'),
        field('email', 'E-mail', { type: 'email', autocomplete: 'email' }),
        field('password', 'Password', { type: 'password', autocomplete: 'new-password', minlength: 10, maxlength: 128 }),
        h('p', { class: 'hint' }, 'At least 10 characters'),
      ]
    : [
        field('login', 'Username or e-mail', { autocomplete: 'username', autocapitalize: 'none', spellcheck: 'false' }),
        field('password', 'Password', { type: 'password', autocomplete: 'current-password' }),
      ];
  const submit = h('button', { type: 'submit', class: 'primary' }, signup ? 'Sign up' : 'Log in');
  const form = h('form', { class: 'auth-form', novalidate: true, 'aria-labelledby': 'auth-title', on: { submit: send } }, fields, submit);
  const other = signup
    ? h('p', {}, 'Have an account? ', h('a', { href: '#/login' }, 'Log in'))
    : h('p', {}, 'New here? ', h('a', { href: '#/signup' }, 'Create an account'));
  fill(main, h('section', { class: 'auth' }, h('h2', { id: 'auth-title' }, title), problem, form, other));
  if (!notice) problem.hidden = true;
  form.querySelector('input').focus();

  async function send(event) {
    event.preventDefault();
    for (const p of form.querySelectorAll('.field-problem')) p.textContent = '';
    for (const input of form.querySelectorAll('input')) input.removeAttribute('aria-invalid');
    problem.hidden = true;
    const value = (name) => form.elements[name].value;
    if (!signup && (!value('login').trim() || !value('password'))) {
      problem.textContent = 'Enter your username or e-mail, and your password.';
      problem.hidden = false;
      form.querySelector(value('login').trim() ? '#password' : '#login').focus();
      return;
    }
    let body;
    if (signup) {
      body = { username: value('username').trim(), email: value('email').trim(), password: value('password') };
    } else {
      const login = value('login').trim();
      body = login.includes('@') ? { email: login, password: value('password') } : { username: login, password: value('password') };
    }
    submit.disabled = true;
    try {
      const answer = await call('POST', signup ? 'accounts/v1/users' : 'accounts/v1/sessions', body);
      onSession(session.start(answer));
    } catch (error) {
      showProblem(error);
    } finally {
      submit.disabled = false;
    }
  }

  function showProblem(error) {
    const fieldsWithProblems = error instanceof ApiError && error.fields ? Object.entries(error.fields) : [];
    for (const [name, problems] of fieldsWithProblems) {
      const id = !signup && (name === 'username' || name === 'email') ? 'login' : name;
      const slot = form.querySelector(`#${CSS.escape(id)}-problem`);
      if (!slot) continue;
      slot.textContent = problems.join('; ');
      form.elements[id]?.setAttribute('aria-invalid', 'true');
    }
    const messages = {
      invalid_credentials: 'That username or e-mail and password do not match.',
      username_taken: 'That username is taken.',
      email_taken: 'An account with that e-mail exists. Log in instead?',
      too_many_attempts: 'Too many attempts. Wait a moment and try again.',
    };
    problem.textContent = messages[error.code] ?? (fieldsWithProblems.length ? 'Please correct the fields below.' : error.message);
    problem.hidden = false;
    (form.querySelector('[aria-invalid="true"]') ?? form.querySelector('input')).focus();
  }
}
