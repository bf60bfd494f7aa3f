// What a URL returns, rendered: a resource (fields, links, actions), a
// collection (table, filters, sort, paging) or anything else as JSON. All of
// it from the response and its schema; nothing here names a type.

import { h, append, clear, show } from './dom.js';
import { send } from './api.js';
import { schemaForm } from './form.js';
import { openStream } from './streams.js';

const SKIP = new Set(['links', 'actions', 'type', 'id']);

// A link the UI follows itself when it stays on this origin.
export function apiLink(href, text, attrs = {}) {
  const same = new URL(href, location.href).origin === location.origin;
  return h('a', { href, ...attrs, dataset: same ? { internal: '1' } : undefined }, text);
}

function fieldOrder(resource, schema) {
  const names = Object.keys(schema?.resourceFields || {}).filter((n) => n in resource && !SKIP.has(n));
  for (const k of Object.keys(resource)) if (!SKIP.has(k) && !names.includes(k)) names.push(k);
  return names;
}

function stateBadge(resource) {
  if (resource.state === undefined) return null;
  const t = resource.transitioning;
  return h('span', { class: `badge state-${resource.state}${t === 'yes' ? ' busy' : ''}`, dataset: { field: 'state' } },
    resource.state, t === 'error' ? ' (error)' : null);
}

function valueCell(name, value, schema) {
  const f = schema?.resourceFields?.[name];
  if (f && f.type === 'password' && value) return h('code', { class: 'secret' }, value);
  if (typeof value === 'string' && /^https?:\/\//.test(value) && f?.type !== 'password') return apiLink(value, value);
  if (value !== null && typeof value === 'object') return h('code', {}, JSON.stringify(value));
  return show(value);
}

export function renderResource(view, resource, ctx) {
  const schema = ctx.schemas.get(resource.type);
  const panel = h('div', { class: 'panel', id: 'panel' });
  const fieldsTable = h('table', { class: 'fields' });
  const actionsNav = h('div', { class: 'actions', role: 'toolbar', 'aria-label': 'actions' });
  const title = h('h2', {}, h('span', { class: 'type' }, resource.type), ' ', resource.name || resource.id, ' ', h('span', { class: 'badge-slot' }));

  function openPanel(node) {
    clear(panel).append(h('button', { type: 'button', class: 'close', 'aria-label': 'close', onclick: () => clear(panel) }, '×'), node);
    panel.querySelector('input,select,textarea,button[type=submit]')?.focus();
  }

  function fill(r) {
    resource = r;
    title.querySelector('.badge-slot').replaceChildren(stateBadge(r) || '');
    append(clear(fieldsTable), [h('caption', { class: 'sr-only' }, 'fields'),
      fieldOrder(r, schema).map((name) => h('tr', { dataset: { field: name } },
        h('th', { scope: 'row' }, name), h('td', {}, valueCell(name, r[name], schema))))]);
    clear(actionsNav);
    if (r.links?.update && schema) {
      actionsNav.append(h('button', { type: 'button', onclick: () => openPanel(schemaForm({
        title: `Edit ${r.type}`, method: 'PUT', url: r.links.update, fields: schema.resourceFields, mode: 'update',
        initial: r, onResponse: (res) => res.status < 400 && fill(res.body),
      })) }, 'Edit'));
    }
    for (const [name, url] of Object.entries(r.actions || {})) {
      const spec = schema?.resourceActions?.[name] || {};
      const input = spec.input ? ctx.schemas.get(spec.input) : null;
      actionsNav.append(h('button', { type: 'button', dataset: { action: name }, onclick: () => openPanel(schemaForm({
        title: `${name}`, method: 'POST', url, fields: input?.resourceFields || {}, mode: 'action', submitLabel: spec.output === 'hostAccess' ? 'Send Request & open' : undefined,
        onResponse: (res, out) => {
          if (res.status >= 400) return;
          if (res.body?.type === 'hostAccess') openStream(name, res.body, out);
          else if (res.body?.type === r.type && res.body.id === r.id) fill(res.body);
        },
      })) }, name));
    }
    if (r.links?.remove) {
      actionsNav.append(h('button', { type: 'button', class: 'danger', onclick: () => openPanel(h('div', {},
        h('p', {}, `Delete ${r.type} ${r.name || r.id}?`),
        schemaForm({ title: 'Delete', method: 'DELETE', url: r.links.remove, fields: {}, mode: 'action',
          onResponse: (res) => res.status < 400 && fill(res.body) }))) }, 'Delete'));
    }
  }

  fill(resource);
  const links = Object.entries(resource.links || {});
  view.append(h('section', { class: 'resource', dataset: { type: resource.type, id: resource.id } },
    title, actionsNav, panel, fieldsTable,
    links.length ? h('section', { class: 'links' }, h('h3', {}, 'Links'),
      h('ul', {}, links.map(([name, url]) => h('li', {}, apiLink(url, name), ' ', h('small', { class: 'muted' }, url))))) : null));

  return {
    onChange(type, id, r) {
      if (type === resource.type && id === resource.id) fill(r);
    },
  };
}

function columnsFor(schema, rows) {
  const fields = schema?.resourceFields || {};
  const cols = ['id'];
  for (const n of ['name', 'state']) if (n in fields || rows.some((r) => n in r)) cols.push(n);
  for (const [n, f] of Object.entries(fields)) {
    if (cols.length >= 9) break;
    if (cols.includes(n) || /^(json|map|array|password)/.test(f.type) || n.endsWith('TS')) continue;
    if (['description', 'uuid', 'transitioningMessage', 'created', 'transitioning'].includes(n)) continue;
    cols.push(n);
  }
  if ('created' in fields && !cols.includes('created')) cols.push('created');
  return cols;
}

function withQuery(url, changes) {
  const u = new URL(url, location.href);
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined) u.searchParams.delete(k);
    else u.searchParams.set(k, v);
  }
  return u.href;
}

export function renderCollection(view, collection, ctx) {
  const type = collection.resourceType;
  const schema = ctx.schemas.get(type);
  const cols = columnsFor(schema, collection.data || []);
  const panel = h('div', { class: 'panel', id: 'panel' });
  const tbody = h('tbody');

  function row(r) {
    return h('tr', { dataset: { id: r.id } }, cols.map((c) => {
      if (c === 'id') return h('td', { dataset: { col: c } }, r.links?.self ? apiLink(r.links.self, r.id) : r.id);
      if (c === 'state') return h('td', { dataset: { col: c } }, stateBadge(r) || show(r.state));
      return h('td', { dataset: { col: c } }, valueCell(c, r[c], schema));
    }));
  }
  for (const r of collection.data || []) tbody.append(row(r));

  const sort = collection.sort;
  const head = h('tr', {}, cols.map((c) => {
    let label = c;
    if (sort && sort.name === c) label = h('span', {}, c, sort.order === 'desc' ? ' ▼' : ' ▲');
    const href = sort && sort.name === c ? sort.reverse : collection.sortLinks?.[c];
    return h('th', { scope: 'col', 'aria-sort': sort && sort.name === c ? (sort.order === 'desc' ? 'descending' : 'ascending') : undefined },
      href ? apiLink(href, label, { class: 'sort', title: `sort by ${c}` }) : label);
  }));

  // Filters: one row per filterable field, the modifiers the schema offers.
  const filters = schema?.collectionFilters || {};
  const filterForm = h('form', { class: 'filters', 'aria-label': 'filters' });
  const applied = collection.filters || {};
  for (const [name, spec] of Object.entries(filters)) {
    const current = Array.isArray(applied[name]) ? applied[name][0] : null;
    const mods = ['eq', ...(spec.modifiers || []).filter((m) => m !== 'eq')];
    const f = schema?.resourceFields?.[name];
    const value = f?.type === 'enum'
      ? h('select', { name: `${name}.value`, 'aria-label': `${name} value` }, h('option', { value: '' }, 'any'),
        (f.options || []).map((o) => h('option', { value: o, selected: current?.value === o }, o)))
      : h('input', { name: `${name}.value`, 'aria-label': `${name} value`, value: current?.value ?? '' });
    filterForm.append(h('div', { class: 'filter', dataset: { field: name } },
      h('span', { class: 'filter-name' }, name),
      h('select', { name: `${name}.modifier`, 'aria-label': `${name} modifier` },
        mods.map((m) => h('option', { value: m, selected: (current?.modifier || 'eq') === m }, m))),
      value));
  }
  if (Object.keys(filters).length) {
    filterForm.append(h('div', { class: 'buttons' }, h('button', { type: 'submit' }, 'Apply filters'),
      h('button', { type: 'button', class: 'secondary', onclick: () => {
        const u = new URL(collection.links.self, location.href);
        for (const k of [...u.searchParams.keys()]) if (!['sort', 'order', 'limit'].includes(k)) u.searchParams.delete(k);
        ctx.navigate(u.href);
      } }, 'Clear')));
  }
  filterForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const u = new URL(collection.links.self, location.href);
    for (const k of [...u.searchParams.keys()]) if (k !== 'sort' && k !== 'order' && k !== 'limit') u.searchParams.delete(k);
    for (const name of Object.keys(filters)) {
      const mod = filterForm.elements.namedItem(`${name}.modifier`).value;
      const val = filterForm.elements.namedItem(`${name}.value`).value;
      if (mod === 'null' || mod === 'notnull') u.searchParams.set(`${name}_${mod}`, '');
      else if (val !== '') u.searchParams.set(mod === 'eq' ? name : `${name}_${mod}`, val);
    }
    ctx.navigate(u.href);
  });

  const p = collection.pagination || {};
  const limitSelect = h('select', { 'aria-label': 'page size', onchange: (e) => ctx.navigate(withQuery(collection.links.self, { limit: e.target.value, marker: null })) },
    [5, 10, 25, 100, 1000].map((n) => h('option', { value: n, selected: n === p.limit }, `${n} a page`)));
  const paging = h('nav', { class: 'paging', 'aria-label': 'pages' },
    p.previous ? apiLink(p.previous, '← Previous', { rel: 'prev' }) : h('span', { class: 'muted' }, '← Previous'),
    h('span', { class: 'count' }, `${(collection.data || []).length} shown${p.total !== undefined && p.total !== null ? ` of ${p.total}` : ''}`),
    p.next ? apiLink(p.next, 'Next →', { rel: 'next' }) : h('span', { class: 'muted' }, 'Next →'),
    limitSelect);

  const createUrl = collection.createTypes?.[type];
  const toolbar = h('div', { class: 'actions', role: 'toolbar', 'aria-label': 'actions' });
  if (createUrl && schema) {
    toolbar.append(h('button', { type: 'button', dataset: { action: 'create' }, onclick: () => {
      clear(panel).append(h('button', { type: 'button', class: 'close', 'aria-label': 'close', onclick: () => clear(panel) }, '×'),
        schemaForm({ title: `Create ${type}`, method: 'POST', url: createUrl, fields: schema.resourceFields, mode: 'create',
          onResponse: (res, out) => {
            if (res.status < 400 && res.body?.links?.self) {
              out.prepend(h('p', {}, 'Created ', apiLink(res.body.links.self, res.body.id)));
              // Events may already have brought a newer state: never go back.
              if (!tbody.querySelector(`tr[data-id="${CSS.escape(res.body.id)}"]`)) upsert(res.body);
            }
          } }));
      panel.querySelector('input,select,textarea')?.focus();
    } }, `Create ${type}`));
  }
  for (const [name, url] of Object.entries(collection.actions || {})) {
    toolbar.append(h('button', { type: 'button', onclick: async () => {
      const r = await send('POST', url, {});
      clear(panel).append(h('pre', {}, JSON.stringify(r.body, null, 2)));
    } }, name));
  }

  function upsert(r) {
    const existing = tbody.querySelector(`tr[data-id="${CSS.escape(r.id)}"]`);
    if (existing) existing.replaceWith(row(r));
    else tbody.prepend(row(r));
  }

  view.append(h('section', { class: 'collection', dataset: { type } },
    h('h2', {}, h('span', { class: 'type' }, type), ' collection'),
    toolbar, panel,
    Object.keys(filters).length ? h('details', { class: 'filter-box', open: Object.values(applied).some(Boolean) }, h('summary', {}, 'Filters'), filterForm) : null,
    h('div', { class: 'table-wrap' }, h('table', { class: 'data' }, h('thead', {}, head), tbody)),
    paging));

  const filtered = Object.values(applied).some(Boolean) || !!p.previous;
  return {
    onChange(changedType, id, r) {
      if (changedType !== type) return;
      const existing = tbody.querySelector(`tr[data-id="${CSS.escape(id)}"]`);
      // New resources join the first, unfiltered page; others update in place.
      if (existing || !filtered) upsert(r);
    },
  };
}

export function renderOther(view, body, ctx) {
  const links = Object.entries(body.links || {});
  view.append(h('section', { class: 'resource' },
    h('h2', {}, body.type || 'response'),
    links.length ? h('ul', { class: 'root-links' }, links.map(([name, url]) => h('li', {}, apiLink(url, name)))) : null,
    h('pre', { class: 'response-body' }, JSON.stringify(body, null, 2))));
  return { onChange() {} };
}
