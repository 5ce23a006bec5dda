// conversations.js — the sidebar: this client's conversations (newest first), new, switch,
// rename (title from the first message until edited), delete with confirmation, and search
// by title. Each conversation is its own server session (history and workspace); the console
// keeps its turns and versions in the conversation's JSON through /api/conversations.

import { h, $, replace, formatTime, toast } from './dom.js';
import { icon } from './icons.js';
import { api, newConversationId, setConversation, currentConversation } from './api.js';
import { state, emit, on } from './state.js';
import { detach, updateControls } from './chat.js';
import { turnsFromHistory, linkHistory } from './history.js';
import { confirmDialog } from './confirm.js';

let listEl;
let searchEl;
let saving = Promise.resolve();
let saveQueued = false;
/** Saves queued or on the wire; `body[data-saved]` tells whether everything is stored. */
let pendingSaves = 0;
/** Counts conversation switches, so only the latest one ends the switching state. */
let openings = 0;

function summary(conv) {
  return conv.title || 'New conversation';
}

export function renderList() {
  const query = (searchEl.value || '').trim().toLowerCase();
  const items = state.conversations.filter((c) => !query || summary(c).toLowerCase().includes(query));
  if (!items.length) {
    replace(listEl, h('li', { class: 'empty-note' }, query ? 'No conversation matches.' : 'No conversations yet.'));
    return;
  }
  replace(listEl, items.map((conv) => {
    const active = conv.id === state.conv?.id;
    const item = h('li', { class: `conv-item${active ? ' active' : ''}`, dataset: { id: conv.id } });
    const open = h('button', { type: 'button', class: 'conv-open', 'aria-current': active ? 'true' : null,
      onclick: () => openConversation(conv.id) },
      h('span', { class: 'title' }, summary(conv)),
      h('span', { class: 'when' }, formatTime(conv.updated_at || conv.created_at)));
    item.append(open, h('span', { class: 'conv-actions' },
      h('button', { type: 'button', class: 'icon-btn conv-rename-btn', title: 'Rename', 'aria-label': `Rename ${summary(conv)}`,
        onclick: () => startRename(item, conv) }, icon('pencil', 16)),
      h('button', { type: 'button', class: 'icon-btn conv-delete-btn', title: 'Delete', 'aria-label': `Delete ${summary(conv)}`,
        onclick: () => deleteConversation(conv) }, icon('trash', 16))));
    return item;
  }));
}

function startRename(item, conv) {
  const input = h('input', { class: 'conv-rename', type: 'text', 'aria-label': 'Conversation title', maxlength: '200' });
  input.value = summary(conv);
  let done = false;
  const finish = async (commit) => {
    if (done) return;
    done = true;
    const title = input.value.trim();
    if (commit && title && title !== conv.title) await rename(conv.id, title);
    renderList();
  };
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') { e.preventDefault(); finish(true); }
    if (e.key === 'Escape') { e.preventDefault(); finish(false); }
  });
  input.addEventListener('blur', () => finish(true));
  replace(item, input);
  input.focus();
  input.select();
}

export async function rename(id, title) {
  if (state.conv?.id === id) {
    state.conv.title = title;
    state.conv.title_edited = true;
    emit('title');
    await saveNow();
    return;
  }
  try {
    const { conversation } = await api(`/api/conversations/${encodeURIComponent(id)}`);
    conversation.title = title;
    conversation.title_edited = true;
    await api(`/api/conversations/${encodeURIComponent(id)}`, { method: 'PUT', json: conversation });
    await loadList();
  } catch (error) {
    toast(`Cannot rename: ${error.message}`, 'error');
  }
}

async function deleteConversation(conv) {
  const ok = await confirmDialog(`Delete “${summary(conv)}”? Its history, workspace files and snapshots are removed for good.`, 'Delete');
  if (!ok) return;
  try {
    if (conv.id === state.conv?.id) detach();
    await api(`/api/conversations/${encodeURIComponent(conv.id)}`, { method: 'DELETE' });
    toast('Conversation deleted', 'ok');
  } catch (error) {
    if (error.status !== 404) { toast(`Cannot delete: ${error.message}`, 'error'); return; }
  }
  state.conversations = state.conversations.filter((c) => c.id !== conv.id);
  if (conv.id === state.conv?.id) {
    state.conv = null;
    if (state.conversations.length) await openConversation(state.conversations[0].id);
    else await createConversation();
  } else {
    renderList();
  }
}

export async function loadList() {
  try {
    const body = await api('/api/conversations?summary=true');
    state.conversations = body.conversations || [];
  } catch (error) {
    toast(`Cannot load conversations: ${error.message}`, 'error');
  }
  renderList();
}

/** Saves the open conversation (serialised: one PUT at a time, the latest state wins). */
export function saveNow() {
  if (!state.conv) return saving;
  if (saveQueued) return saving;
  saveQueued = true;
  pendingSaves += 1;
  document.body.dataset.saved = 'false';
  saving = saving.then(async () => {
    saveQueued = false;
    const conv = state.conv;
    if (!conv) return;
    try {
      const body = await api(`/api/conversations/${encodeURIComponent(conv.id)}`, { method: 'PUT', json: conv, keepalive: true });
      if (state.conv === conv) conv.updated_at = body.conversation?.updated_at || conv.updated_at;
      const at = state.conversations.findIndex((c) => c.id === conv.id);
      const listed = { id: conv.id, title: conv.title, created_at: conv.created_at, updated_at: conv.updated_at };
      if (at >= 0) state.conversations.splice(at, 1);
      state.conversations.unshift(listed);
      renderList();
    } catch (error) {
      toast(`Cannot save the conversation: ${error.message}`, 'error');
    }
  }).finally(() => {
    pendingSaves -= 1;
    if (!pendingSaves) document.body.dataset.saved = 'true';
  });
  return saving;
}

export async function createConversation() {
  detach();
  setSwitching(true);
  const now = new Date().toISOString();
  const conv = { id: newConversationId(), title: 'New conversation', title_edited: false, created_at: now, turns: [], last_seq: null, pending: null };
  try {
    const body = await api('/api/conversations', { method: 'POST', json: conv });
    state.conversations.unshift(body.conversation || conv);
  } catch (error) {
    toast(`Cannot create a conversation: ${error.message}`, 'error');
    setSwitching(false);
    return;
  }
  await openConversation(conv.id);
  $('#composer-input')?.focus();
}

/** Switches the console (and the server session it talks to) to conversation `id`. */
export async function openConversation(id) {
  detach();
  state.busy = false;
  const opening = ++openings;
  setSwitching(true);
  try {
    await loadConversation(id);
  } finally {
    if (opening === openings) setSwitching(false);
  }
}

function setSwitching(on) {
  state.switching = on;
  updateControls();
}

/** The body of `openConversation`: fetches the record and the session, then shows them. */
async function loadConversation(id) {
  const previous = state.conv?.id ?? null;
  setConversation(id);
  let conv = null;
  try {
    const body = await api(`/api/conversations/${encodeURIComponent(id)}`);
    conv = body.conversation;
  } catch (error) {
    if (error.status !== 404) {
      // Opening it without its record would save an empty one over it; stay where we were.
      toast(`Cannot open the conversation: ${error.message}`, 'error');
      if (currentConversation() === id && previous) setConversation(previous);
      return;
    }
  }
  if (!conv) {
    const listed = state.conversations.find((c) => c.id === id);
    conv = { id, title: listed?.title || 'New conversation', turns: [], last_seq: null, pending: null };
  }
  conv.turns = Array.isArray(conv.turns) ? conv.turns : [];
  let boot = null;
  try {
    boot = await api('/api/session/boot');
  } catch (error) {
    toast(`Cannot reach the session: ${error.message}`, 'error');
  }
  if (currentConversation() !== id) return; // switched again meanwhile
  state.conv = conv;
  state.boot = boot;
  if (boot) {
    state.workspace = boot.workspace_state || null;
    if (!conv.turns.length && Array.isArray(boot.vm_history) && boot.vm_history.length) {
      // More entries than the newest ones shown: the thread begins with a placeholder.
      const older = (boot.vm?.history_length ?? 0) > boot.vm_history.length;
      conv.turns = turnsFromHistory(boot.vm_history, { older });
      const typed = conv.turns.find((t) => t.versions[0].entry_id);
      if (!conv.title_edited && typed) conv.title = typed.versions[0].user.slice(0, 60);
    } else {
      linkHistory(conv.turns, boot.vm_history); // server ids of the messages, for editing
    }
  }
  document.body.classList.remove('side-open');
  $('#app').classList.remove('side-open');
  emit('title');
  emit('conversation-opened', { boot });
  renderList();
}

export function initConversations() {
  listEl = $('#conv-list');
  searchEl = $('#conv-search');
  searchEl.addEventListener('input', renderList);
  $('#new-conversation').addEventListener('click', () => createConversation());
  on('save-conversation', () => saveNow());
  on('title', () => {
    const title = state.conv?.title || 'New conversation';
    $('#conv-title').textContent = title;
    document.title = `${title} · OKCVM`;
    const listed = state.conversations.find((c) => c.id === state.conv?.id);
    if (listed) { listed.title = title; renderList(); }
  });
}
