// chat.js — the conversation view: turns with streamed Markdown replies, the tool timeline,
// token counts and latency, error bubbles, Stop, regenerate (last reply) and edit (any of
// the person's messages) as versions with `< i/n >` navigation (switching a version restores
// its workspace snapshot; the turns after an edited message belong to the version they were
// written in), and re-attaching to a turn that was still running when the page was loaded.
// Each version keeps the server history id of its user message (`entry_id`), which an edit
// of an earlier message sends as `replace_from` and a switch sends to
// `/api/session/history/switch`, so the model continues from the version on screen. Calls
// that wait for a person's approval show their card in the tool row (approvals.js).

import { h, $, replace, formatDuration, formatTime, toast } from './dom.js';
import { icon } from './icons.js';
import { api, request, ApiError } from './api.js';
import { follow } from './sse.js';
import { renderMarkdown } from './markdown.js';
import { richResults } from './previews.js';
import { state, emit, on, applyLimits } from './state.js';
import { applyApprovalEvent, approvalKey, approvalView } from './approvals.js';
import { clip, currentVersion, userEntryId, compactionSegment, hasOlder, loadOlder } from './history.js';
import { compactionView } from './context.js';

let messagesEl;
let inputEl;
let controller = null;
/** DOM views of versions being streamed, by version object. */
const liveViews = new Map();

/* ---------- applying server events to a stored version ---------- */

export function applyEvent(version, event) {
  const segments = version.segments || (version.segments = []);
  switch (event.type) {
    case 'token': {
      const last = segments[segments.length - 1];
      if (last && last.type === 'text') last.text += event.delta || '';
      else segments.push({ type: 'text', text: event.delta || '' });
      break;
    }
    case 'tool_started':
      segments.push({ type: 'tool', invocation_id: event.invocation_id, tool_name: event.tool_name,
        input: event.input, status: 'running', started_at: Date.now() });
      break;
    case 'tool_completed': {
      let tool = segments.find((s) => s.type === 'tool' && s.invocation_id === event.invocation_id);
      if (!tool) {
        tool = { type: 'tool', invocation_id: event.invocation_id, tool_name: event.tool_name };
        segments.push(tool);
      }
      tool.status = event.status === 'error' ? 'error' : 'success';
      tool.duration_ms = event.duration_ms;
      if (event.output !== undefined) tool.output = clip(event.output);
      if (event.error !== undefined) tool.error = clip(event.error);
      break;
    }
    case 'approval_required':
    case 'approval_decided':
      applyApprovalEvent(segments, event);
      break;
    case 'context_compacted':
      segments.push(compactionSegment(event));
      emit('context-changed');
      break;
    case 'final': {
      const p = event.payload || {};
      version.meta = p.meta || null;
      version.web_preview = p.web_preview || null;
      version.ppt_slides = p.ppt_slides || [];
      version.artifacts = p.artifacts || [];
      version.snapshot = p.workspace_state?.latest_snapshot || version.snapshot || null;
      if (!segments.some((s) => s.type === 'text' && s.text.trim()) && p.reply) {
        segments.push({ type: 'text', text: p.reply });
      }
      const id = userEntryId(p.vm_history, version.user);
      if (id) version.entry_id = id;
      if (p.workspace_state) { state.workspace = p.workspace_state; emit('workspace-state'); }
      applyLimits(p);
      break;
    }
    case 'error':
      if (event.message === 'cancelled') version.stopped = true;
      else version.error = event.message || 'The turn failed.';
      break;
    default:
      break;
  }
  for (const s of segments) if (s.type === 'tool' && (s.status === 'running' || s.status === 'waiting') && event.type === 'stop') {
    s.status = 'error';
    s.error = s.error || (version.stopped ? 'stopped' : 'did not finish');
  }
}

/* ---------- rendering ---------- */

function toolView(tool, rerender = () => {}) {
  const args = tool.input === undefined ? '' : typeof tool.input === 'string' ? tool.input : JSON.stringify(tool.input);
  const details = h('details', { class: `tool ${tool.status || 'running'}`, dataset: { invocation: tool.invocation_id || '' },
    open: tool.status === 'waiting' });
  const time = tool.status === 'running' ? 'running…' : tool.status === 'waiting' ? 'waiting for you' : formatDuration(tool.duration_ms);
  details.append(
    h('summary', {},
      h('span', { class: 'tool-status', 'aria-hidden': 'true' }),
      h('span', { class: 'tool-name' }, tool.tool_name || 'tool'),
      h('span', { class: 'tool-args' }, args.length > 160 ? `${args.slice(0, 160)}…` : args),
      h('span', { class: 'tool-time' }, time),
      h('span', { class: 'sr-only' }, tool.status === 'error' ? ' failed' : tool.status === 'success' ? ' succeeded' : ' running')),
    approvalView(tool, rerender) || '', // the DOM's append writes null as the text "null"
    h('div', { class: 'tool-body' },
      h('h4', {}, 'Arguments'),
      h('pre', {}, tool.input === undefined ? '' : typeof tool.input === 'string' ? tool.input : JSON.stringify(tool.input, null, 2)),
      tool.error !== undefined || tool.output !== undefined
        ? [h('h4', {}, tool.error !== undefined ? 'Error' : 'Output'), h('pre', { class: 'tool-output' }, tool.error ?? tool.output ?? '')]
        : null));
  return details;
}

function metaView(meta) {
  if (!meta) return null;
  const parts = [];
  if (meta.model) parts.push(h('span', { title: 'Model' }, meta.model));
  if (Number.isFinite(meta.tokensIn)) parts.push(h('span', { title: 'Prompt tokens' }, icon('up', 13), `${meta.tokensIn.toLocaleString()} tokens in`));
  if (Number.isFinite(meta.tokensOut)) parts.push(h('span', { title: 'Completion tokens' }, icon('down', 13), `${meta.tokensOut.toLocaleString()} tokens out`));
  if (Number.isFinite(meta.latency)) parts.push(h('span', { title: 'Latency of the turn' }, icon('clock', 13), `${meta.latency.toFixed(2)} s`));
  if (meta.timestamp) parts.push(h('span', {}, formatTime(meta.timestamp)));
  return h('div', { class: 'meta' }, parts);
}

/** Updates (or builds) the assistant bubble of a version in place. */
function renderAssistant(bubble, version, { live = false } = {}) {
  const segments = version.segments || [];
  let body = bubble.querySelector(':scope > .segments');
  if (!body) { body = h('div', { class: 'segments' }); bubble.prepend(body); }
  // Segments only ever grow: reuse existing nodes and update the last ones.
  segments.forEach((seg, i) => {
    let node = body.children[i];
    if (seg.type === 'text') {
      if (!node || !node.classList.contains('markdown')) {
        node = h('div', { class: 'markdown' });
        if (body.children[i]) body.children[i].replaceWith(node); else body.append(node);
      }
      if (node.dataset.src !== seg.text) {
        node.innerHTML = renderMarkdown(seg.text); // renderMarkdown escapes everything it does not know
        node.dataset.src = seg.text;
      }
    } else if (seg.type === 'compaction') {
      if (!node || node.dataset.entry !== (seg.entry_id || '') || !node.classList.contains('compaction-divider')) {
        const fresh = compactionView(seg);
        if (node) node.replaceWith(fresh); else body.append(fresh);
      }
    } else {
      const key = `${seg.status}|${seg.duration_ms}|${seg.output?.length}|${seg.error?.length}|${approvalKey(seg)}`;
      if (!node || node.dataset.key !== key || node.tagName !== 'DETAILS') {
        const wasOpen = node?.open;
        const fresh = toolView(seg, () => renderAssistant(bubble, version, { live }));
        fresh.dataset.key = key;
        if (wasOpen) fresh.open = true;
        if (node) node.replaceWith(fresh); else body.append(fresh);
      }
    }
  });
  while (body.children.length > segments.length) body.lastChild.remove();
  body.querySelectorAll('.cursor').forEach((n) => n.classList.remove('cursor'));
  let waiting = bubble.querySelector(':scope > .thinking');
  if (live) {
    const last = body.lastElementChild;
    if (last && last.classList.contains('markdown')) {
      (last.lastElementChild || last).classList.add('cursor');
      waiting?.remove();
    } else if (!waiting) {
      waiting = h('div', { class: 'thinking', role: 'status' }, h('span'), h('span'), h('span'),
        h('em', { class: 'sr-only' }, 'Working'));
      body.after(waiting);
    }
  } else {
    waiting?.remove();
  }
  const tail = bubble.querySelector(':scope > .tail') || bubble.appendChild(h('div', { class: 'tail' }));
  replace(tail,
    live ? null : richResults(version, (item) => emit('open-preview', item)),
    version.stopped ? h('div', { class: 'notice' }, 'Stopped. The reply above is what the agent produced before it was stopped.') : null,
    version.error ? h('div', { class: 'error-bubble', role: 'alert' }, h('strong', {}, 'The turn failed'), version.error) : null,
    live ? null : metaView(version.meta));
}

function versionNav(turn, index) {
  const n = turn.versions.length;
  if (n < 2) return null;
  const i = turn.current ?? 0;
  return h('span', { class: 'versions', role: 'group', 'aria-label': 'Versions' },
    h('button', { type: 'button', class: 'icon-btn version-prev', title: 'Previous version', 'aria-label': 'Previous version',
      disabled: i === 0 || state.busy, onclick: () => switchVersion(index, i - 1) }, icon('left', 16)),
    h('span', { class: 'version-label', 'aria-live': 'polite' }, `${i + 1}/${n}`),
    h('button', { type: 'button', class: 'icon-btn version-next', title: 'Next version', 'aria-label': 'Next version',
      disabled: i === n - 1 || state.busy, onclick: () => switchVersion(index, i + 1) }, icon('right', 16)));
}

function turnView(turn, index, isLast) {
  const version = currentVersion(turn);
  const live = state.busy && isLast && liveViews.has(version);
  const userBubble = version.placeholder
    ? h('button', { type: 'button', class: 'btn load-older', onclick: () => showOlder({ asked: true }) }, 'Load earlier messages')
    : version.no_user ? null : h('div', { class: 'bubble' }, version.user);
  const assistantBubble = h('div', { class: 'bubble' });
  renderAssistant(assistantBubble, version, { live });
  if (live) liveViews.set(version, assistantBubble);
  const typed = !version.placeholder && !version.no_user;
  const canEdit = !state.busy && typed;
  const canRegenerate = isLast && !state.busy && typed;
  const el = h('article', { class: 'turn', tabindex: '-1', dataset: { turn: String(index) } },
    h('div', { class: 'msg msg-user' }, userBubble),
    h('div', { class: 'msg-tools' },
      versionNav(turn, index),
      canEdit ? h('button', { type: 'button', class: 'icon-btn edit-btn', title: 'Edit this message', 'aria-label': 'Edit this message',
        onclick: () => startEdit(el, index) }, icon('pencil', 16)) : null,
      canRegenerate ? h('button', { type: 'button', class: 'icon-btn regen-btn', title: 'Regenerate the reply', 'aria-label': 'Regenerate the reply',
        onclick: () => regenerate() }, icon('refresh', 16)) : null,
      h('button', { type: 'button', class: 'icon-btn', title: 'Copy the reply', 'aria-label': 'Copy the reply',
        onclick: () => copyReply(version) }, icon('copy', 16))),
    h('div', { class: 'msg msg-assistant' }, h('div', { class: 'avatar', 'aria-hidden': 'true' }, 'OK'), assistantBubble));
  return el;
}

function copyReply(version) {
  const text = (version.segments || []).filter((s) => s.type === 'text').map((s) => s.text).join('\n\n');
  navigator.clipboard?.writeText(text).then(() => toast('Reply copied', 'ok'), () => toast('Copy is not allowed here', 'error'));
}

function welcomeView() {
  const hints = ['Make a CSV of the first 20 primes', 'Write a small HTML page with a clock', 'Summarise the files I upload'];
  return h('div', { class: 'welcome' },
    h('h2', {}, 'What should we build?'),
    (() => { const d = h('div', { class: 'markdown' }); d.innerHTML = renderMarkdown(state.boot?.reply || ''); return d; })(),
    h('div', { class: 'hints' }, hints.map((hint) => h('button', { type: 'button', onclick: () => { inputEl.value = hint; inputEl.focus(); autosize(); } }, hint))));
}

/** Conversations loading older messages now, and those whose last load failed. */
const loadingOlder = new WeakSet();
const olderFailed = new WeakSet();

/**
 * Loads the page of history before the first shown message, keeping the view where it was.
 * Scrolling to the top asks (`asked` false) only while nothing else changes the thread; the
 * button always asks.
 */
async function showOlder({ asked = false } = {}) {
  const conv = state.conv;
  if (!hasOlder(conv) || loadingOlder.has(conv)) return;
  // Turns are addressed by index while a new version is prepared: nothing is added meanwhile.
  if (preparing) return;
  if (!asked && (olderFailed.has(conv) || state.busy || state.switching || messagesEl.querySelector('.edit-box'))) return;
  loadingOlder.add(conv);
  const keep = conv.turns[1] || null; // the first turn shown now, focused after the load
  try {
    const fromBottom = messagesEl.scrollHeight - messagesEl.scrollTop;
    if (await loadOlder(conv) && state.conv === conv) {
      olderFailed.delete(conv);
      renderChat({ keepScroll: true, noScroll: true });
      messagesEl.scrollTop = messagesEl.scrollHeight - fromBottom;
      if (asked) {
        const at = keep ? conv.turns.indexOf(keep) : 0;
        messagesEl.querySelector(`.turn[data-turn="${Math.max(0, at)}"]`)?.focus({ preventScroll: true });
      }
      save();
    }
  } catch (error) {
    olderFailed.add(conv); // scrolling does not ask again; the button does
    toast(`Cannot load earlier messages: ${error.message}`, 'error');
  } finally {
    loadingOlder.delete(conv);
  }
}

export function renderChat({ keepScroll = false, noScroll = false } = {}) {
  const atBottom = messagesEl.scrollHeight - messagesEl.scrollTop - messagesEl.clientHeight < 80;
  liveViews.forEach((_, v) => liveViews.set(v, null));
  const turns = state.conv?.turns || [];
  if (!turns.length) replace(messagesEl, welcomeView());
  else replace(messagesEl, turns.map((t, i) => turnView(t, i, i === turns.length - 1)));
  if (!noScroll && (!keepScroll || atBottom)) scrollToEnd();
  updateControls();
}

function scrollToEnd() {
  messagesEl.scrollTop = messagesEl.scrollHeight;
}

let frame = 0;
function scheduleLive(version) {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    const bubble = liveViews.get(version);
    if (!bubble) return;
    const atBottom = messagesEl.scrollHeight - messagesEl.scrollTop - messagesEl.clientHeight < 120;
    renderAssistant(bubble, version, { live: state.busy });
    if (atBottom) scrollToEnd();
  });
}

export function updateControls() {
  $('#stop').hidden = !state.busy;
  $('#send').disabled = state.busy || state.switching;
  const pill = $('#status-pill');
  pill.textContent = state.busy ? 'Working…' : 'Idle';
  pill.className = `status-pill${state.busy ? ' busy' : ''}`;
  document.body.dataset.switching = String(state.switching);
  emit('busy', state.busy);
}

/* ---------- running turns ---------- */

function save() {
  emit('save-conversation');
}

async function runTurn(version, { message, replaceLast = false, replaceFrom = null, reattach = false }) {
  const conv = state.conv;
  state.busy = true;
  controller = new AbortController();
  liveViews.set(version, null);
  if (!reattach) conv.pending = { after: conv.last_seq ?? null, started_at: new Date().toISOString() };
  const after = conv.pending?.after ?? conv.last_seq ?? null;
  if (reattach) version.segments = [];
  renderChat();
  save();
  let found = true;
  try {
    let first = null;
    if (!reattach) {
      first = await request('/api/chat', {
        method: 'POST',
        json: replaceFrom ? { message, replace_from: replaceFrom, stream: true } : { message, replace_last: replaceLast, stream: true },
        headers: { accept: 'text/event-stream' },
        signal: controller.signal,
      });
    }
    const result = await follow({
      first,
      after,
      signal: controller.signal,
      onEvent: (event) => { if (state.conv === conv) { applyEvent(version, event); scheduleLive(version); } },
      onReconnect: (n) => setHint(`Connection lost — re-attaching (attempt ${n})…`),
    });
    found = result.found;
    if (result.lastSeq !== null && result.lastSeq !== undefined) conv.last_seq = result.lastSeq;
    if (!found && reattach) version.error = version.error || 'The server has no record of this turn; it never started. Send the message again.';
  } catch (error) {
    if (error.name !== 'AbortError') {
      version.error = error instanceof ApiError && error.status === 409
        ? 'Another turn is already running in this conversation. Wait for it or press Stop.'
        : error instanceof ApiError && error.status === 400 && replaceFrom
          ? `The server's history no longer holds this message (${error.message}); it cannot be edited in place.`
          : error.message;
    }
  } finally {
    setHint('');
    if (state.conv === conv) {
      conv.pending = null;
      state.busy = false;
      controller = null;
      liveViews.delete(version);
      renderChat({ keepScroll: true });
      save();
      emit('turn-finished');
    }
  }
}

function setHint(text) {
  const el = $('#composer-hint');
  if (el) el.textContent = text;
}

export async function sendMessage(text) {
  const message = text.trim();
  if (!message || state.busy || state.switching || !state.conv) return;
  const conv = state.conv;
  const version = { user: message, segments: [], created_at: new Date().toISOString(),
    base_snapshot: state.workspace?.latest_snapshot || null };
  conv.turns = conv.turns || [];
  conv.turns.push({ versions: [version], current: 0 });
  if (!conv.title_edited && conv.turns.length === 1) conv.title = titleFrom(message);
  emit('title');
  await runTurn(version, { message });
}

export function titleFrom(message) {
  const line = message.replace(/\s+/g, ' ').trim();
  return line.length > 60 ? `${line.slice(0, 57)}…` : line || 'New conversation';
}

async function restoreSnapshot(id) {
  if (!id) return true;
  try {
    const body = await api('/api/session/workspace/restore', { method: 'POST', json: { snapshot_id: id, checkout: true } });
    state.workspace = body.workspace_state;
    emit('workspace-state');
    emit('workspace-changed');
    return true;
  } catch (error) {
    toast(`Cannot restore the workspace snapshot: ${error.message}`, 'error');
    return false;
  }
}

/** The server id of a version's user message, looked up in the session's history if unknown. */
async function entryIdOf(index) {
  const conv = state.conv;
  const known = currentVersion(conv.turns[index]).entry_id;
  if (known) return known;
  try {
    const boot = await api('/api/session/boot');
    if (state.conv === conv) linkHistory(conv.turns, boot?.vm_history);
  } catch { /* reported below as "cannot edit" */ }
  return currentVersion(conv.turns[index]).entry_id || null;
}

let preparing = false;

/**
 * A new version of turn `index`: the same message (regenerate, last turn only) or an edited
 * one. The turns after it stay with the version they were written in; the server drops its
 * history from that message on (`replace_last` for the last turn, `replace_from` otherwise).
 */
async function newVersion(index, message) {
  const conv = state.conv;
  if (state.busy || preparing || !conv?.turns?.[index]) return;
  const isLast = index === conv.turns.length - 1;
  let replaceFrom = null;
  preparing = true;
  try {
    if (!isLast) {
      replaceFrom = await entryIdOf(index);
      if (!replaceFrom) {
        toast('This message is no longer in the server\'s history, so it cannot be edited.', 'error');
        return;
      }
    }
    const turn = conv.turns[index];
    const base = turn.versions[0].base_snapshot;
    await restoreSnapshot(base);
    if (state.conv !== conv || state.busy) return;
    const later = conv.turns.slice(index + 1);
    if (later.length) turn.versions[turn.current ?? 0].tail = later;
    conv.turns = conv.turns.slice(0, index + 1);
    const version = { user: message, segments: [], created_at: new Date().toISOString(), base_snapshot: base };
    turn.versions.push(version);
    turn.current = turn.versions.length - 1;
    if (index === 0 && !conv.title_edited) { conv.title = titleFrom(message); emit('title'); }
    preparing = false;
    await runTurn(version, replaceFrom ? { message, replaceFrom } : { message, replaceLast: true });
  } finally {
    preparing = false;
  }
}

export function regenerate() {
  const turns = state.conv?.turns || [];
  if (!turns.length) return;
  return newVersion(turns.length - 1, currentVersion(turns[turns.length - 1]).user);
}

function startEdit(turnEl, index) {
  const version = currentVersion(state.conv.turns[index]);
  const box = h('textarea', { 'aria-label': 'Edit your message' });
  box.value = version.user;
  const cancel = () => renderChat({ keepScroll: true });
  const submit = () => { const text = box.value.trim(); if (text) newVersion(index, text); };
  box.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); submit(); }
    if (e.key === 'Escape') { e.preventDefault(); cancel(); }
  });
  const editor = h('div', { class: 'msg msg-user' }, h('div', { class: 'edit-box' }, box,
    h('div', { class: 'row' },
      h('button', { type: 'button', class: 'btn', onclick: cancel }, 'Cancel'),
      h('button', { type: 'button', class: 'btn btn-primary edit-save', onclick: submit }, 'Save & send'))));
  turnEl.querySelector('.msg-user').replaceWith(editor);
  box.focus();
  box.setSelectionRange(box.value.length, box.value.length);
}

/** Switches sent to the server, in the order they were made (quick clicks must not cross). */
let historySync = Promise.resolve();
let pendingSwitches = 0;

/**
 * Makes the server's history (what the model sees next) the one of `version`, then runs
 * `afterwards` (the workspace restore) in the same queue.
 */
function followInHistory(version, afterwards = async () => {}) {
  const conv = state.conv;
  pendingSwitches += 1;
  state.switching = true; // nothing is sent until the server's history has followed
  updateControls();
  historySync = historySync.then(async () => {
    try {
      if (version.entry_id && state.conv === conv) {
        await api('/api/session/history/switch', { method: 'POST', json: { entry_id: version.entry_id } });
      }
    } catch (error) {
      toast(`The agent still remembers the version it last worked on: ${error.message}`, 'error');
    }
    try {
      await afterwards();
    } finally {
      pendingSwitches -= 1;
      if (!pendingSwitches) {
        state.switching = false;
        updateControls();
      }
    }
  });
  return historySync;
}

/**
 * Shows version `to` of turn `index`, swapping the turns after it; the server's history and
 * the workspace snapshot follow.
 */
export async function switchVersion(index, to) {
  const conv = state.conv;
  if (state.busy || !conv) return;
  const turn = conv.turns[index];
  const from = turn.current ?? 0;
  if (to < 0 || to >= turn.versions.length || to === from) return;
  turn.versions[from].tail = conv.turns.slice(index + 1);
  conv.turns = conv.turns.slice(0, index + 1).concat(turn.versions[to].tail || []);
  delete turn.versions[to].tail;
  turn.current = to;
  renderChat({ keepScroll: true });
  save();
  const last = conv.turns[conv.turns.length - 1];
  const snapshot = currentVersion(last).snapshot;
  // History and workspace follow in one queue, so quick clicks never overlap on the server.
  await followInHistory(currentVersion(turn), async () => {
    if (!snapshot || state.conv !== conv) return;
    const ok = await restoreSnapshot(snapshot);
    if (ok) toast(`Workspace restored to version ${to + 1}`, 'ok');
  });
}

export async function stopTurn() {
  if (!state.busy) return;
  try {
    await api('/api/chat/stop', { method: 'POST' });
  } catch (error) {
    if (error.status !== 409 && error.status !== 404) toast(`Stop failed: ${error.message}`, 'error');
  }
}

/** Re-attaches to the open conversation's running turn, if the last page left one. */
export function resumePending() {
  const conv = state.conv;
  if (!conv?.pending || !conv.turns?.length || state.busy) return;
  const version = currentVersion(conv.turns[conv.turns.length - 1]);
  runTurn(version, { message: version.user, reattach: true });
}

/** Aborts the local stream (the server keeps the turn running); used when switching away. */
export function detach() {
  controller?.abort();
}

/* ---------- composer ---------- */

function autosize() {
  inputEl.style.height = 'auto';
  inputEl.style.height = `${Math.min(inputEl.scrollHeight, 224)}px`;
}

export function initChat() {
  messagesEl = $('#messages');
  inputEl = $('#composer-input');
  $('#composer').addEventListener('submit', (e) => {
    e.preventDefault();
    const text = inputEl.value;
    if (!text.trim() || state.busy || state.switching || !state.conv) return;
    inputEl.value = '';
    autosize();
    sendMessage(text);
  });
  inputEl.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $('#composer').requestSubmit();
    }
  });
  inputEl.addEventListener('input', autosize);
  $('#stop').addEventListener('click', stopTurn);
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && state.busy && !document.querySelector('dialog[open]')) stopTurn();
  });
  on('conversation-opened', () => renderChat());
  on('render-chat', () => renderChat({ keepScroll: true }));
  // Scrolled to the top of a thread rebuilt from the history: the earlier messages follow.
  messagesEl.addEventListener('scroll', () => {
    if (messagesEl.scrollTop < 60 && hasOlder(state.conv)) showOlder();
  });
}
