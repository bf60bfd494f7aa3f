// A form for a create, an update or an action, generated from the schema:
// one control per writable field, checked against the schema before it is
// sent, with Show Request and Send Request.

import { h, clear } from './dom.js';
import { describe, send } from './api.js';

function baseType(type) {
  const m = /^(\w+)\[(.*)\]$/.exec(type || '');
  return m ? { kind: m[1], of: m[2] } : { kind: type, of: null };
}

function control(name, f, value) {
  const id = `f-${name}`;
  const { kind, of } = baseType(f.type);
  const common = { id, name, 'aria-describedby': `${id}-error` };
  if (kind === 'boolean') return h('input', { ...common, type: 'checkbox', checked: value === true });
  if (kind === 'enum') {
    const sel = h('select', common);
    if (f.nullable || !f.required) sel.append(h('option', { value: '' }, '—'));
    for (const o of f.options || []) sel.append(h('option', { value: o, selected: o === value }, o));
    return sel;
  }
  if (kind === 'json' || kind === 'map' || (kind === 'array' && of !== 'string')) {
    return h('textarea', { ...common, rows: 3, placeholder: 'JSON', value: value === undefined || value === null ? '' : JSON.stringify(value) });
  }
  if (kind === 'array') {
    return h('textarea', { ...common, rows: 3, placeholder: 'one per line', value: Array.isArray(value) ? value.join('\n') : '' });
  }
  const input = h('input', { ...common, value: value === undefined || value === null ? '' : String(value) });
  if (kind === 'int' || kind === 'float') {
    input.type = 'number';
    input.step = kind === 'int' ? '1' : 'any';
    if (f.min !== undefined && f.min !== null) input.min = f.min;
    if (f.max !== undefined && f.max !== null) input.max = f.max;
  } else {
    input.type = kind === 'password' ? 'password' : 'text';
    if (f.maxLength) input.maxLength = f.maxLength;
  }
  if (kind === 'reference') input.placeholder = `${of} id`;
  return input;
}

// The value a control holds, or {error} when it cannot be one of the field's type.
function read(el, f) {
  const { kind, of } = baseType(f.type);
  if (kind === 'boolean') return { value: el.checked };
  const text = el.value;
  if (text.trim() === '') return { empty: true };
  if (kind === 'int') {
    if (!/^-?\d+$/.test(text.trim())) return { error: ['InvalidType', 'must be a whole number'] };
    return { value: Number(text) };
  }
  if (kind === 'float') {
    const n = Number(text);
    return Number.isFinite(n) ? { value: n } : { error: ['InvalidType', 'must be a number'] };
  }
  if (kind === 'array' && of === 'string') return { value: text.split('\n').map((s) => s.trim()).filter(Boolean) };
  if (kind === 'json' || kind === 'map' || kind === 'array') {
    try {
      const v = JSON.parse(text);
      if (kind === 'array' && !Array.isArray(v)) return { error: ['InvalidType', 'must be a JSON array'] };
      if (kind === 'map' && (typeof v !== 'object' || v === null || Array.isArray(v))) return { error: ['InvalidType', 'must be a JSON object'] };
      return { value: v };
    } catch {
      // A bare word is a string: json fields often take "all" and the like.
      if (kind === 'json' && /^[\w.:-]+$/.test(text.trim())) return { value: text.trim() };
      return { error: ['InvalidType', 'is not valid JSON'] };
    }
  }
  return { value: text };
}

function check(name, f, got) {
  if (got.error) return got.error;
  if (got.empty) return f.required ? ['MissingRequired', 'is required'] : null;
  const v = got.value;
  if (typeof v === 'number') {
    if (f.min !== undefined && f.min !== null && v < f.min) return ['MinLimitExceeded', `must be at least ${f.min}`];
    if (f.max !== undefined && f.max !== null && v > f.max) return ['MaxLimitExceeded', `must be at most ${f.max}`];
  }
  if (typeof v === 'string') {
    if (f.minLength && v.length < f.minLength) return ['MinLimitExceeded', `must be at least ${f.minLength} characters`];
    if (f.maxLength && v.length > f.maxLength) return ['MaxLimitExceeded', `must be at most ${f.maxLength} characters`];
    if (f.validChars && [...v].some((c) => !f.validChars.includes(c))) return ['InvalidCharacters', 'has characters that are not allowed'];
    if (f.invalidChars && [...v].some((c) => f.invalidChars.includes(c))) return ['InvalidCharacters', 'has characters that are not allowed'];
  }
  if (f.type === 'enum' && f.options && !f.options.includes(v)) return ['InvalidOption', `must be one of ${f.options.join(', ')}`];
  return null;
}

// fields: the schema's resourceFields; mode: 'create', 'update' or 'action'.
export function schemaForm({ title, method, url, fields, mode, initial = {}, onResponse, submitLabel }) {
  // An action's input type is all input; a resource's fields say which are writable.
  const writable = Object.entries(fields || {}).filter(([, f]) => (mode === 'update' ? f.update : mode === 'create' ? f.create : true));
  const rows = writable.map(([name, f]) => {
    const value = mode === 'update' ? initial[name] : f.default;
    const el = control(name, f, value);
    const hints = [baseType(f.type).kind === 'reference' ? f.type : f.type];
    if (f.required) hints.push('required');
    if (f.min !== undefined && f.min !== null) hints.push(`min ${f.min}`);
    if (f.max !== undefined && f.max !== null) hints.push(`max ${f.max}`);
    if (f.maxLength) hints.push(`≤ ${f.maxLength} chars`);
    return h('div', { class: 'field', dataset: { field: name } },
      h('label', { for: el.id }, name, f.required ? h('span', { class: 'req', 'aria-hidden': 'true' }, ' *') : null),
      el,
      h('small', { class: 'hint' }, hints.join(' · ')),
      h('div', { class: 'field-error', id: `${el.id}-error`, role: 'alert' }));
  });

  const output = h('div', { class: 'request-output' });
  const form = h('form', { class: 'schema-form', novalidate: true, 'aria-label': title },
    h('h3', {}, title),
    rows.length ? rows : h('p', { class: 'muted' }, 'No input.'),
    h('div', { class: 'buttons' },
      h('button', { type: 'button', class: 'secondary', onclick: () => showRequest() }, 'Show Request'),
      h('button', { type: 'submit' }, submitLabel || 'Send Request')),
    output);

  function markError(name, message) {
    const row = form.querySelector(`.field[data-field="${CSS.escape(name)}"]`);
    if (!row) return false;
    row.classList.add('invalid');
    row.querySelector('input,select,textarea').setAttribute('aria-invalid', 'true');
    row.querySelector('.field-error').textContent = message;
    return true;
  }

  function clearErrors() {
    for (const row of form.querySelectorAll('.field.invalid')) {
      row.classList.remove('invalid');
      row.querySelector('[aria-invalid]')?.removeAttribute('aria-invalid');
      row.querySelector('.field-error').textContent = '';
    }
  }

  // The body, or null after marking the fields that are wrong.
  function body() {
    clearErrors();
    const out = {};
    let first = null;
    for (const [name, f] of writable) {
      const el = form.elements.namedItem(name);
      const got = read(el, f);
      const problem = check(name, f, got);
      if (problem) {
        markError(name, `${name} ${problem[1]}`);
        first = first || el;
        continue;
      }
      if (got.empty) {
        if (mode === 'update' && initial[name] !== null && initial[name] !== undefined) out[name] = null;
        continue;
      }
      if (mode === 'update' && JSON.stringify(got.value) === JSON.stringify(initial[name])) continue;
      out[name] = got.value;
    }
    if (first) {
      first.focus();
      return null;
    }
    return out;
  }

  function showRequest() {
    const b = body();
    if (!b) return;
    const d = describe(method, url, b);
    clear(output).append(
      h('h4', {}, 'HTTP request'), h('pre', { class: 'http-request' }, d.http),
      h('h4', {}, 'curl'), h('pre', { class: 'curl' }, d.curl),
      url.startsWith('https:') || location.protocol === 'https:'
        ? h('p', { class: 'muted' }, 'paddock-ca.pem is the server\'s CA (GET /v1/cacerts); the secret comes from $PADDOCK_SECRET_KEY.')
        : h('p', { class: 'muted' }, 'The secret comes from $PADDOCK_SECRET_KEY.'));
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const b = body();
    if (!b) return;
    const button = form.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      const r = await send(method, url, b);
      clear(output).append(h('h4', {}, 'Response'),
        h('p', { class: r.status < 400 ? 'status ok' : 'status bad' }, `${r.status} ${r.statusText || ''}`));
      if (r.status >= 400 && r.body && r.body.type === 'error') {
        const err = r.body;
        const marked = err.fieldName && markError(err.fieldName, `${err.code}: ${err.message}`);
        output.append(h('div', { class: 'error-object', role: 'alert' },
          h('strong', {}, err.code || 'Error'), ' ', err.message || '',
          err.fieldName ? h('span', { class: 'muted' }, ` (field ${err.fieldName}${marked ? '' : ', not in this form'})`) : null));
      }
      output.append(h('pre', { class: 'response-body' }, JSON.stringify(r.body, null, 2)));
      if (onResponse) onResponse(r, output);
    } catch (err) {
      clear(output).append(h('p', { class: 'status bad', role: 'alert' }, String(err)));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}
