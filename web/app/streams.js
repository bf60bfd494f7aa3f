// The stream views (streams.md): an action that answers a hostAccess opens
// a WebSocket to /v1/stream?token=. Messages are binary, first byte the
// channel: 0 stdin, 1 stdout, 2 stderr, 3 status (JSON, last), 4 resize.
// Stats arrive as JSON text messages.

import { h, clear } from './dom.js';

const STDIN = 0, STDOUT = 1, STDERR = 2, STATUS = 3, RESIZE = 4;

let current = null;  // one open stream at a time; a new one closes it

function connect(access) {
  if (current) current.close(1000);
  const ws = new WebSocket(`${access.url}?token=${encodeURIComponent(access.token)}`);
  ws.binaryType = 'arraybuffer';
  current = ws;
  return ws;
}

function frame(channel, payload) {
  const bytes = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload;
  const out = new Uint8Array(bytes.length + 1);
  out[0] = channel;
  out.set(bytes, 1);
  return out;
}

function statusLine(el, ws) {
  const set = (text, cls) => { el.textContent = text; el.className = `stream-status ${cls || ''}`; };
  set('connecting…');
  ws.addEventListener('open', () => set('open', 'ok'));
  ws.addEventListener('close', (e) => { if (!el.dataset.final) set(`closed (${e.code})`, e.code === 1000 ? '' : 'bad'); });
  return (status) => {
    el.dataset.final = '1';
    const ok = status.status === 'Success';
    set(ok ? 'ended: Success' : `ended: ${status.status}${status.exitCode !== undefined ? ` (exit ${status.exitCode})` : ''}${status.message ? `: ${status.message}` : ''}`, ok ? '' : 'bad');
  };
}

function closeButton(ws) {
  return h('button', { type: 'button', class: 'secondary', onclick: () => ws.close(1000) }, 'Close stream');
}

function logsView(access, out) {
  const ws = connect(access);
  const pre = h('pre', { class: 'log', tabindex: '0', 'aria-label': 'log output', 'aria-live': 'off' });
  const status = h('p', { class: 'stream-status', role: 'status' });
  const final = statusLine(status, ws);
  let follow = true;
  const followBox = h('label', {}, h('input', { type: 'checkbox', checked: true, onchange: (e) => { follow = e.target.checked; } }), ' scroll with output');
  const decoders = { [STDOUT]: new TextDecoder(), [STDERR]: new TextDecoder() };
  ws.addEventListener('message', (e) => {
    if (typeof e.data === 'string') return;
    const data = new Uint8Array(e.data);
    if (data[0] === STATUS) { final(JSON.parse(new TextDecoder().decode(data.subarray(1)))); return; }
    if (data[0] !== STDOUT && data[0] !== STDERR) return;
    const text = decoders[data[0]].decode(data.subarray(1), { stream: true });
    pre.append(h('span', { class: data[0] === STDERR ? 'stderr' : 'stdout' }, text));
    if (follow) pre.scrollTop = pre.scrollHeight;
  });
  out.append(h('section', { class: 'stream logs', 'aria-label': 'logs' },
    h('div', { class: 'stream-bar' }, h('strong', {}, 'Logs'), ' ', h('span', { class: 'legend stdout' }, 'stdout'), ' ',
      h('span', { class: 'legend stderr' }, 'stderr'), followBox, closeButton(ws)), status, pre));
}

async function terminalView(access, out) {
  const [{ Terminal }, { FitAddon }] = await Promise.all([
    import('/ui/vendor/xterm/xterm.mjs'), import('/ui/vendor/xterm/addon-fit.mjs')]);
  const ws = connect(access);
  const box = h('div', { class: 'term-box', 'aria-label': 'terminal' });
  const status = h('p', { class: 'stream-status', role: 'status' });
  const final = statusLine(status, ws);
  out.append(h('section', { class: 'stream exec' }, h('div', { class: 'stream-bar' }, h('strong', {}, 'Terminal'), closeButton(ws)), status, box));
  const term = new Terminal({ convertEol: false, cursorBlink: true, fontSize: 14, scrollback: 5000 });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(box);
  const sendSize = () => {
    try { fit.fit(); } catch { return; }
    if (ws.readyState === WebSocket.OPEN) ws.send(frame(RESIZE, JSON.stringify({ width: term.cols, height: term.rows })));
  };
  const observer = new ResizeObserver(() => sendSize());
  observer.observe(box);
  ws.addEventListener('open', () => { sendSize(); term.focus(); });
  term.onData((d) => { if (ws.readyState === WebSocket.OPEN) ws.send(frame(STDIN, d)); });
  ws.addEventListener('message', (e) => {
    if (typeof e.data === 'string') return;
    const data = new Uint8Array(e.data);
    if (data[0] === STATUS) final(JSON.parse(new TextDecoder().decode(data.subarray(1))));
    else if (data[0] === STDOUT || data[0] === STDERR) term.write(data.subarray(1));
  });
  ws.addEventListener('close', () => observer.disconnect());
  window.paddockTerminal = term;  // lets a person (or a test) read the screen
}

function statsView(access, out) {
  const ws = connect(access);
  const canvas = h('canvas', { class: 'chart', width: 640, height: 200, role: 'img', 'aria-label': 'CPU and memory over time' });
  const readout = h('p', { class: 'readout', 'aria-live': 'polite' });
  const status = h('p', { class: 'stream-status', role: 'status' });
  const final = statusLine(status, ws);
  out.append(h('section', { class: 'stream stats' }, h('div', { class: 'stream-bar' }, h('strong', {}, 'Stats'),
    h('span', { class: 'legend cpu' }, 'CPU %'), h('span', { class: 'legend mem' }, 'memory %'), closeButton(ws)), status, canvas, readout));
  const samples = [];
  const mb = (n) => `${(n / 1048576).toFixed(1)} MiB`;
  function draw() {
    const ctx = canvas.getContext('2d');
    const w = canvas.width, hgt = canvas.height;
    const style = getComputedStyle(canvas);
    ctx.clearRect(0, 0, w, hgt);
    ctx.strokeStyle = style.getPropertyValue('--grid') || '#ccc';
    ctx.lineWidth = 1;
    for (let y = 0; y <= 4; y++) { ctx.beginPath(); ctx.moveTo(0, (hgt * y) / 4); ctx.lineTo(w, (hgt * y) / 4); ctx.stroke(); }
    const line = (key, color) => {
      ctx.strokeStyle = color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      samples.forEach((s, i) => {
        const x = (w * i) / 59;
        const y = hgt - (Math.min(100, Math.max(0, s[key])) / 100) * hgt;
        if (i) ctx.lineTo(x, y); else ctx.moveTo(x, y);
      });
      ctx.stroke();
    };
    line('cpu', style.getPropertyValue('--cpu') || '#1565c0');
    line('mem', style.getPropertyValue('--mem') || '#c2185b');
  }
  ws.addEventListener('message', (e) => {
    if (typeof e.data !== 'string') {
      const data = new Uint8Array(e.data);
      if (data[0] === STATUS) final(JSON.parse(new TextDecoder().decode(data.subarray(1))));
      return;
    }
    let m = JSON.parse(e.data);
    if (Array.isArray(m)) m = m.reduce((a, s) => ({ ...s, cpuPercent: a.cpuPercent + s.cpuPercent, memoryUsage: a.memoryUsage + s.memoryUsage }), { cpuPercent: 0, memoryUsage: 0 });
    const mem = m.memoryLimit ? (100 * m.memoryUsage) / m.memoryLimit : 0;
    samples.push({ cpu: m.cpuPercent || 0, mem });
    if (samples.length > 60) samples.shift();
    readout.textContent = `CPU ${(m.cpuPercent || 0).toFixed(1)} % · memory ${mb(m.memoryUsage || 0)}${m.memoryLimit ? ` of ${mb(m.memoryLimit)}` : ''} · pids ${m.pids ?? '—'} · net ↓${mb(m.networkRx || 0)} ↑${mb(m.networkTx || 0)}`;
    draw();
  });
}

// Opens the view for a stream action's hostAccess below `out`.
export function openStream(action, access, out) {
  const views = { logs: logsView, execute: terminalView, stats: statsView };
  const view = views[action];
  if (!view) { out.append(h('p', { class: 'muted' }, 'No view for this stream.')); return; }
  for (const old of out.parentNode.querySelectorAll('.stream')) old.remove();
  view(access, out);
}

export function closeStream() {
  if (current) current.close(1000);
  current = null;
}
