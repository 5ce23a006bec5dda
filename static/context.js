// context.js — how full the model's context is, and compaction: the gauge in the header
// (used / window tokens from `/api/session/info`, coloured as it nears the limit), its
// dialog with "Compact now" (`POST /api/session/compact`, optionally saying what the summary
// must keep), and the divider a compaction leaves in the thread, which opens to show the
// summary the model now reads.

import { h, $, toast } from './dom.js';
import { api } from './api.js';
import { renderMarkdown } from './markdown.js';
import { state, emit, on } from './state.js';
import { currentVersion, compactionSegment } from './history.js';

let context = null;
/** Answers to older asks are dropped: the gauge shows the newest. */
let asked = 0;

const short = (n) => (n >= 10000 ? `${Math.round(n / 1000)}k` : n >= 1000 ? `${(n / 1000).toFixed(1)}k` : String(n));

/** Asks the server how full the open conversation's context is. */
export async function refreshContext() {
  if (!state.conv) return;
  const conv = state.conv;
  const ask = ++asked;
  try {
    const info = await api('/api/session/info');
    if (state.conv === conv && ask === asked) show(info.context);
  } catch {
    // The gauge keeps its last figures; the chat reports connection problems itself.
  }
}

function show(figures) {
  const gauge = $('#context-gauge');
  context = figures || null;
  if (!context || !context.window_tokens) {
    gauge.hidden = true;
    return;
  }
  const { used_tokens: used, window_tokens: window, compactions } = context;
  const ratio = used / window;
  gauge.hidden = false;
  gauge.querySelector('.gauge-fill').style.width = `${Math.min(100, ratio * 100).toFixed(1)}%`;
  gauge.querySelector('.gauge-text').textContent = `${short(used)} / ${short(window)}`;
  gauge.classList.toggle('near', ratio >= 0.7 && ratio < 0.85);
  gauge.classList.toggle('full', ratio >= 0.85);
  const words = `Context: ${used.toLocaleString()} of ${window.toLocaleString()} tokens (${Math.round(ratio * 100)}%), ${compactions} compaction${compactions === 1 ? '' : 's'}`;
  gauge.title = `${words}. Click to compact.`;
  gauge.setAttribute('aria-label', words);
  $('#context-figures').textContent = `${words}.`;
}

/** A compaction in the thread: a divider that opens to show the summary the model reads. */
export function compactionView(seg) {
  const label = seg.summarized ? 'Context compacted: the older part is now a summary' : 'Context compacted: older tool outputs shortened';
  const tokens = (n) => (Number.isFinite(n) ? n.toLocaleString() : '?');
  const body = h('div', { class: 'compaction-body markdown' }, 'Loading the summary…');
  const details = h('details', { class: 'compaction-divider', dataset: { entry: seg.entry_id || '' } },
    h('summary', {}, h('span', { class: 'compaction-label' }, label),
      h('span', { class: 'compaction-tokens' }, `${tokens(seg.before_tokens)} → ${tokens(seg.after_tokens)} tokens`)),
    body);
  details.addEventListener('toggle', async () => {
    if (!details.open || details.dataset.loaded) return;
    try {
      const entry = await api(`/api/session/history/${encodeURIComponent(seg.entry_id)}`);
      const summary = typeof entry.content === 'string' ? entry.content.trim() : '';
      body.innerHTML = renderMarkdown(summary || 'No summary yet: only older tool outputs were shortened.');
      details.dataset.loaded = 'true';
    } catch (error) {
      body.textContent = `The summary cannot be shown: ${error.message}`;
    }
  });
  return details;
}

async function compactNow() {
  const button = $('#compact-now');
  const status = $('#context-status');
  if (state.busy) {
    status.textContent = 'Wait for the running turn to finish (or stop it) first.';
    return;
  }
  const conv = state.conv;
  const instructions = $('#compact-instructions').value.trim();
  button.disabled = true;
  status.textContent = 'Compacting: the model is writing the summary…';
  try {
    const done = await api('/api/session/compact', { method: 'POST', json: instructions ? { instructions } : {} });
    if (state.conv !== conv) {
      toast(`The conversation you left was compacted: ${done.before_tokens.toLocaleString()} → ${done.after_tokens.toLocaleString()} tokens`, 'ok');
      return;
    }
    const last = conv.turns[conv.turns.length - 1];
    if (last) currentVersion(last).segments.push(compactionSegment(done));
    emit('save-conversation');
    emit('render-chat');
    show(done.context);
    $('#compact-instructions').value = '';
    status.textContent = '';
    $('#context-dialog').close();
    toast(`Compacted: ${done.before_tokens.toLocaleString()} → ${done.after_tokens.toLocaleString()} tokens`, 'ok');
  } catch (error) {
    status.textContent = error.message;
  } finally {
    button.disabled = false;
  }
}

export function initContext() {
  const dialog = $('#context-dialog');
  $('#context-gauge').addEventListener('click', () => {
    $('#context-status').textContent = '';
    dialog.showModal();
    refreshContext();
  });
  $('#context-close').addEventListener('click', () => dialog.close());
  $('#compact-now').addEventListener('click', compactNow);
  on('conversation-opened', () => { show(null); refreshContext(); });
  on('context-changed', refreshContext);
  let wasBusy = false;
  on('busy', (busy) => {
    if (wasBusy && !busy) refreshContext();
    wasBusy = busy;
  });
}
