// Talking to the API: credentials, requests, schemas, and the equivalent
// request written out (HTTP and curl) with the secret left out.

const KEY = 'paddock.key';
const SIGNED_OUT = 'paddock.signedOut';

export function storedKey() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY));
  } catch {
    return null;
  }
}

export function signIn(access, secret) {
  sessionStorage.setItem(KEY, JSON.stringify({ access, secret }));
  sessionStorage.removeItem(SIGNED_OUT);
}

// Forgets the stored key. Credentials the browser's own prompt keeps are
// overridden by a blank Authorization header until the next sign-in.
export function signOut() {
  sessionStorage.removeItem(KEY);
  sessionStorage.setItem(SIGNED_OUT, '1');
}

export function usingBrowserPrompt() {
  sessionStorage.removeItem(SIGNED_OUT);
}

function headers(body) {
  const out = { Accept: 'application/json', 'X-API-No-Challenge': 'true' };
  const key = storedKey();
  if (key) out.Authorization = 'Basic ' + btoa(`${key.access}:${key.secret}`);
  else if (sessionStorage.getItem(SIGNED_OUT)) out.Authorization = 'Basic ' + btoa('signed-out:');
  if (body !== undefined) out['Content-Type'] = 'application/json';
  return out;
}

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

// One request; resolves to {status, headers, body} whatever the status.
export async function send(method, url, body) {
  const res = await fetch(url, {
    method,
    headers: headers(body),
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  });
  const text = await res.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = { type: 'error', status: res.status, message: text.slice(0, 500) };
  }
  return { status: res.status, statusText: res.statusText, headers: res.headers, body: parsed };
}

export async function get(url) {
  const r = await send('GET', url);
  if (r.status >= 400) throw new ApiError(r.status, r.body);
  return r;
}

const schemaSets = new Map();

// The schemas at a URL (X-API-Schemas), loaded once: a map type id → schema.
export async function schemasAt(url) {
  if (!schemaSets.has(url)) {
    const p = get(url).then((r) => {
      const byId = new Map();
      for (const s of r.body.data || []) byId.set(s.id, s);
      return byId;
    });
    p.catch(() => schemaSets.delete(url));
    schemaSets.set(url, p);
  }
  return schemaSets.get(url);
}

export function forgetSchemas() {
  schemaSets.clear();
}

function shellQuote(s) {
  return "'" + String(s).replace(/'/g, "'\\''") + "'";
}

// The request as it goes on the wire and as a curl command. The secret is
// never written out: curl reads it from $PADDOCK_SECRET_KEY.
export function describe(method, url, body) {
  const key = storedKey();
  const u = new URL(url, location.href);
  const lines = [`${method} ${u.pathname}${u.search} HTTP/1.1`, `Host: ${u.host}`, 'Accept: application/json'];
  lines.push(`Authorization: Basic base64(${key ? key.access : '$PADDOCK_ACCESS_KEY'}:<secret>)`);
  const json = body === undefined ? undefined : JSON.stringify(body);
  if (json !== undefined) lines.push('Content-Type: application/json', `Content-Length: ${new TextEncoder().encode(json).length}`);
  const http = lines.join('\n') + '\n\n' + (json ?? '');
  const user = `${key ? key.access : '$PADDOCK_ACCESS_KEY'}:$PADDOCK_SECRET_KEY`;
  const parts = ['curl', '-sS', '-u', `"${user}"`];
  if (u.protocol === 'https:') parts.push('--cacert', 'paddock-ca.pem');
  parts.push('-X', method, shellQuote(u.href));
  if (json !== undefined) parts.push('-H', shellQuote('Content-Type: application/json'), '--data', shellQuote(json));
  return { http, curl: parts.join(' ') };
}
