// sse.js — reading the server's Server-Sent Events over fetch (POST /api/chat needs a body
// and headers, which EventSource cannot send). Frames are `id:` + `data: <json>`; comment
// lines (`: ping`) are ignored. `follow` keeps a turn's stream alive: if the connection
// drops before `stop`, it re-attaches with GET /api/chat/events?after=<last id>.

import { request } from './api.js';

/** Reads one SSE response, calling onEvent(event, seq) per data frame. */
export async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let lastSeq = null;
  let stopped = false;
  const handleBlock = (block) => {
    let id = null;
    const data = [];
    for (const raw of block.split('\n')) {
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'id') id = Number(value);
      else if (field === 'data') data.push(value);
    }
    if (!data.length) return;
    let event;
    try { event = JSON.parse(data.join('\n')); } catch { return; }
    if (Number.isFinite(id)) lastSeq = id;
    if (event.type === 'stop') stopped = true;
    onEvent(event, id);
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, '\n');
    let at;
    while ((at = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, at);
      buffer = buffer.slice(at + 2);
      handleBlock(block);
    }
  }
  if (buffer.trim()) handleBlock(buffer);
  return { lastSeq, stopped, ended: true };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Follows a turn to its `stop` frame. `first` is the Response of a chat POST
 * or null to start with a re-attach. Returns {lastSeq, found}; found = false when the
 * server had no turn to re-attach to.
 */
export async function follow({ first, after, onEvent, signal, onReconnect }) {
  let lastSeq = after ?? null;
  let response = first || null;
  let attempts = 0;
  for (;;) {
    if (!response) {
      const query = lastSeq === null ? '' : `?after=${lastSeq}`;
      response = await request(`/api/chat/events${query}`, {
        headers: { accept: 'text/event-stream' },
        signal,
      });
    }
    const reattached = !first;
    let received = 0;
    let result;
    try {
      result = await readEvents(response, (event, seq) => {
        if (Number.isFinite(seq)) {
          if (lastSeq !== null && seq <= lastSeq) return; // already seen
          lastSeq = seq;
        }
        received += 1;
        attempts = 0;
        onEvent(event, seq);
      });
    } catch (error) {
      if (signal?.aborted) throw error;
      result = { stopped: false, ended: false };
    }
    response = null;
    first = null;
    if (result.stopped) return { lastSeq, found: true };
    // A re-attach that replays nothing and ends: the server has no turn after `lastSeq`.
    if (reattached && received === 0 && result.ended) return { lastSeq, found: false };
    attempts += 1;
    if (attempts > 8) throw new Error('The connection to the server was lost.');
    onReconnect?.(attempts);
    await sleep(Math.min(4000, 250 * 2 ** attempts));
  }
}
