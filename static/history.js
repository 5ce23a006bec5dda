// history.js — turns rebuilt from the server's stored history: a conversation with no
// console record is shown from its `vm_history` (the newest entries), the older entries are
// fetched page by page (`GET /api/session/history?before=`) when the thread is scrolled to
// the top, and the shown turns are linked to the ids of their user messages so any of them
// can be edited. Compaction entries become dividers in the thread.

import { api } from './api.js';
import { approvalFromHistory } from './approvals.js';

const MAX_STORED_OUTPUT = 16 * 1024;
/** Entries fetched per page when older messages are loaded. */
const PAGE = 60;

export const clip = (text) => {
  const s = typeof text === 'string' ? text : JSON.stringify(text, null, 2) ?? '';
  return s.length > MAX_STORED_OUTPUT ? `${s.slice(0, MAX_STORED_OUTPUT)}\n… (${s.length - MAX_STORED_OUTPUT} more characters)` : s;
};

export function currentVersion(turn) {
  return turn.versions[Math.min(turn.current ?? 0, turn.versions.length - 1)];
}

export function textOf(content) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.filter((p) => p?.type === 'text').map((p) => p.text).join('\n');
  return '';
}

/** The id of the last user entry of `entries` (a `vm_history`) whose text is `text`. */
export function userEntryId(entries, text) {
  if (!Array.isArray(entries)) return null;
  for (let i = entries.length - 1; i >= 0; i -= 1) {
    const e = entries[i];
    if (e?.role === 'user' && e.id && textOf(e.content) === text) return e.id;
  }
  return null;
}

/**
 * Gives the shown turns the ids of their user messages in `entries` (a `vm_history`, the
 * newest entries of the server's history), matching from the end: the last user entry is
 * the last turn's message, and so on. A turn whose text does not match is skipped (it never
 * reached the history, e.g. it failed to start); a turn already linked to an entry of the
 * list keeps its id.
 */
export function linkHistory(turns, entries) {
  const users = (Array.isArray(entries) ? entries : []).filter((e) => e?.role === 'user' && e.id);
  let u = users.length - 1;
  for (let t = (turns || []).length - 1; t >= 0 && u >= 0; t -= 1) {
    const version = currentVersion(turns[t]);
    const at = version.entry_id ? users.findIndex((e) => e.id === version.entry_id) : -1;
    if (at >= 0 && at <= u) { u = at - 1; continue; } // already linked: continue before it
    if (textOf(users[u].content) !== version.user) continue;
    version.entry_id = users[u].id;
    u -= 1;
  }
}

/** The divider segment of a compaction (an event, or an entry of the history). */
export function compactionSegment(source) {
  const c = source.compaction || source;
  return { type: 'compaction', entry_id: source.entry_id || source.id, before_tokens: c.before_tokens,
    after_tokens: c.after_tokens, summarized: Boolean(c.summarized) };
}

/**
 * Turns from history entries (used when the conversation has no console record). Entries
 * before the first message the person typed, and `older` (the history holds entries before
 * these), make a placeholder turn at the front: it keeps those entries (`raw`) and the id of
 * the oldest one (`before`), so `loadOlder` can fetch the page before it and rebuild the
 * turn they belong to whole.
 */
export function turnsFromHistory(entries, { older = false } = {}) {
  const list = entries || [];
  const firstUser = list.findIndex(startsTurn);
  const lead = firstUser < 0 ? list.length : firstUser;
  const turns = [];
  if (older || lead > 0) {
    const raw = list.slice(0, lead);
    const version = older
      ? { user: '(earlier messages)', segments: [], from_history: true, placeholder: true, raw, before: list[0]?.id ?? null }
      : { user: '', segments: [], from_history: true, no_user: true };
    addEntries(version, raw, new Map());
    turns.push({ versions: [version], current: 0 });
  }
  let version = null;
  const tools = new Map();
  for (const entry of list.slice(lead)) {
    if (startsTurn(entry)) {
      version = { user: textOf(entry.content), segments: [], created_at: entry.created_at, from_history: true, entry_id: entry.id };
      turns.push({ versions: [version], current: 0 });
    } else {
      addEntries(version, [entry], tools);
    }
  }
  return turns;
}

/** Whether an entry is a message the person typed (it starts a turn). */
function startsTurn(entry) {
  return entry?.role === 'user' && !entry.compaction && typeof entry.content === 'string';
}

/** Adds the replies, tool calls, results and compactions of `entries` to `version`. */
function addEntries(version, entries, tools) {
  for (const entry of entries) {
    if (entry.compaction) {
      version.segments.push(compactionSegment(entry));
    } else if (entry.role === 'assistant') {
      const text = textOf(entry.content);
      if (text) version.segments.push({ type: 'text', text });
      for (const call of entry.tool_calls || []) {
        let input = call.function?.arguments ?? call.arguments;
        try { input = JSON.parse(input); } catch { /* keep the text */ }
        const seg = { type: 'tool', invocation_id: call.id, tool_name: call.function?.name || call.name, input, status: 'success' };
        tools.set(call.id, seg);
        version.segments.push(seg);
      }
    } else if (entry.role === 'tool') {
      const seg = tools.get(entry.tool_call_id);
      const content = clip(textOf(entry.content));
      if (seg) {
        if (entry.is_error) { seg.status = 'error'; seg.error = content; } else seg.output = content;
        seg.approval = approvalFromHistory(entry);
      }
    }
  }
}

/** Whether the thread begins with entries not loaded yet. */
export function hasOlder(conv) {
  return Boolean(conv?.turns?.length && currentVersion(conv.turns[0]).placeholder);
}

/**
 * Fetches the page of history before the oldest loaded entry and puts its turns in place of
 * the placeholder (rebuilt with the placeholder's own entries, which continue the page's
 * last turn). Resolves true when the thread changed.
 */
export async function loadOlder(conv) {
  if (!hasOlder(conv)) return false;
  const placeholder = currentVersion(conv.turns[0]);
  const raw = Array.isArray(placeholder.raw) ? placeholder.raw : [];
  const before = placeholder.before || raw[0]?.id;
  if (!before) {
    // A placeholder saved before it kept its entries: the history can be reloaded instead.
    conv.turns.shift();
    return true;
  }
  const page = await api(`/api/session/history?limit=${PAGE}&before=${encodeURIComponent(before)}`);
  const older = turnsFromHistory(page.entries.concat(raw), { older: page.has_more });
  conv.turns.splice(0, 1, ...older);
  return true;
}
