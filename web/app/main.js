// The API UI: the page at any /v1 URL shows what that URL returns as JSON,
// follows links inside the page, and keeps itself current from /v1/subscribe.

import { h, clear } from './dom.js';
import { ApiError, forgetSchemas, schemasAt, send, signIn, signOut, storedKey, usingBrowserPrompt } from './api.js';
import { renderCollection, renderOther, renderResource } from './views.js';
import { closeStream } from './streams.js';
import { Live } from './live.js';

const view = document.getElementById('view');
const crumbs = document.getElementById('crumbs');
const who = document.getElementById('who');
const jsonLink = document.getElementById('json-link');
const liveBadge = document.getElementById('live');
let rendered = null;
let loadSeq = 0;

const live = new Live((event) => rendered?.onChange(event.resourceType, event.resourceId, event.data.resource),
  (state) => { liveBadge.textContent = state; liveBadge.className = `live ${state}`; });

function apiPath(href) {
  const u = new URL(href, location.href);
  u.searchParams.delete('_challenge');
  u.searchParams.delete('_format');
  return u;
}

function renderCrumbs(u) {
  const segs = u.pathname.split('/').filter(Boolean);
  clear(crumbs);
  let path = '';
  segs.forEach((s, i) => {
    path += '/' + s;
    if (i) crumbs.append(h('span', { 'aria-hidden': 'true' }, ' / '));
    crumbs.append(i === segs.length - 1 && !u.search ? h('span', { 'aria-current': 'page' }, s)
      : h('a', { href: path, dataset: { internal: '1' } }, s));
  });
  const j = new URL(u);
  j.searchParams.set('_format', 'json');
  jsonLink.href = j.href;
}

function showSignIn(message) {
  closeStream();
  live.stop();
  who.textContent = 'signed out';
  const form = h('form', { class: 'signin', 'aria-label': 'sign in' },
    h('h2', {}, 'Sign in'),
    message ? h('p', { class: 'status bad', role: 'alert' }, message) : null,
    h('p', { class: 'muted' }, 'An API key: the access key and its secret. It is kept in this tab only (sessionStorage).'),
    h('div', { class: 'field' }, h('label', { for: 'access' }, 'Access key'), h('input', { id: 'access', name: 'access', autocomplete: 'username', required: true })),
    h('div', { class: 'field' }, h('label', { for: 'secret' }, 'Secret key'), h('input', { id: 'secret', name: 'secret', type: 'password', autocomplete: 'current-password', required: true })),
    h('div', { class: 'buttons' }, h('button', { type: 'submit' }, 'Sign in'),
      h('a', { href: withChallenge(), class: 'button secondary', onclick: () => usingBrowserPrompt() }, "Use the browser's sign-in prompt")));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    signIn(form.elements.access.value.trim(), form.elements.secret.value);
    load(location.href, false);
  });
  clear(view).append(form);
  form.elements.access.focus();
}

function withChallenge() {
  const u = new URL(location.href);
  u.searchParams.set('_challenge', '1');
  return u.pathname + u.search;
}

async function load(href, push = true) {
  const seq = ++loadSeq;
  const u = apiPath(href);
  if (push) history.pushState({}, '', u.pathname + u.search);
  else history.replaceState({}, '', u.pathname + u.search);
  renderCrumbs(u);
  view.setAttribute('aria-busy', 'true');
  try {
    const r = await send('GET', u.href);
    if (seq !== loadSeq) return;
    if (r.status === 401) {
      showSignIn(storedKey() ? 'That key was refused.' : null);
      return;
    }
    const schemasUrl = r.headers.get('X-API-Schemas');
    const schemas = schemasUrl ? await schemasAt(schemasUrl).catch(() => new Map()) : new Map();
    if (seq !== loadSeq) return;
    closeStream();
    clear(view);
    const key = storedKey();
    who.textContent = key ? key.access : 'signed in';
    const ctx = { schemas, navigate: (to) => load(to) };
    const body = r.body || {};
    if (r.status >= 400) {
      view.append(h('div', { class: 'error-object', role: 'alert' }, h('strong', {}, `${r.status} ${body.code || ''}`), ' ', body.message || ''));
      rendered = renderOther(view, body, ctx);
    } else if (body.type === 'collection') {
      rendered = renderCollection(view, body, ctx);
    } else if (body.links?.self && body.type && schemas.has(body.type)) {
      rendered = renderResource(view, body, ctx);
    } else {
      rendered = renderOther(view, body, ctx);
    }
    document.title = `${u.pathname} · Paddock`;
    const scope = /^\/v1\/projects\/[^/]+(?=\/)/.exec(u.pathname);
    live.start(new URL((scope ? scope[0] : '/v1') + '/subscribe', location.href).href);
  } catch (err) {
    if (seq !== loadSeq) return;
    clear(view).append(h('p', { class: 'status bad', role: 'alert' }, err instanceof ApiError ? err.message : String(err)));
  } finally {
    view.removeAttribute('aria-busy');
  }
}

document.addEventListener('click', (e) => {
  const a = e.target.closest('a[data-internal]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  load(a.href);
  view.focus({ preventScroll: true });
});
window.addEventListener('popstate', () => load(location.href, false));
document.getElementById('signout').addEventListener('click', () => {
  signOut();
  forgetSchemas();
  showSignIn('Signed out.');
});

load(location.href, false);
