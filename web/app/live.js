// Live updates: a ticket from POST …/subscribe (a browser cannot put
// credentials on a WebSocket), then /v1/subscribe?token=; reconnects with
// a growing pause while the page stays open.

import { send } from './api.js';

export class Live {
  constructor(onEvent, onState) {
    this.onEvent = onEvent;
    this.onState = onState;
    this.url = null;
    this.ws = null;
    this.retry = 0;
    this.timer = null;
  }

  start(subscribeUrl) {
    if (this.url === subscribeUrl) return;
    this.stop();
    this.url = subscribeUrl;
    this.connect();
  }

  stop() {
    this.url = null;
    clearTimeout(this.timer);
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close(1000);
      this.ws = null;
    }
    this.onState('off');
  }

  async connect() {
    const url = this.url;
    this.onState('connecting');
    try {
      const r = await send('POST', url);
      if (url !== this.url) return;
      if (r.status !== 200 || !r.body?.token) throw new Error(`subscribe: ${r.status}`);
      const ws = new WebSocket(`${r.body.url}?eventNames=resource.change&token=${encodeURIComponent(r.body.token)}`);
      this.ws = ws;
      ws.onopen = () => { this.retry = 0; this.onState('live'); };
      ws.onmessage = (e) => {
        const m = JSON.parse(e.data);
        if (m.name === 'resource.change') this.onEvent(m);
      };
      ws.onclose = () => { if (this.ws === ws) this.again(); };
    } catch {
      if (url === this.url) this.again();
    }
  }

  again() {
    this.ws = null;
    this.onState('reconnecting');
    const pause = Math.min(30000, 500 * 2 ** this.retry++);
    this.timer = setTimeout(() => this.url && this.connect(), pause);
  }
}
