// approvals.js — tool calls that wait for a person: the approval card shown inside the tool's
// row in the timeline (the command with its parsed parts, the reason, a countdown, Approve /
// Deny / Always for this conversation), answered through POST /api/chat/approve; the line a
// decided call keeps (also after a reload, from the history entry's `approval`); and a
// notification when an approval arrives while the tab is in the background.

import { h, toast } from './dom.js';
import { api } from './api.js';

/** Applies `approval_required` / `approval_decided` to the tool segment they name. */
export function applyApprovalEvent(segments, event) {
  let tool = segments.find((s) => s.type === 'tool' && s.invocation_id === event.invocation_id);
  if (!tool) {
    tool = { type: 'tool', invocation_id: event.invocation_id, tool_name: event.tool_name, status: 'running' };
    segments.push(tool);
  }
  if (event.type === 'approval_required') {
    tool.approval = {
      id: event.approval_id,
      reason: event.reason,
      commands: event.commands || [],
      expires_at: event.expires_at,
    };
    tool.status = 'waiting';
    notify(event);
  } else {
    tool.approval = { ...(tool.approval || {}), decided: decisionOf(event) };
    if (tool.status === 'waiting') tool.status = 'running';
  }
}

function decisionOf(record) {
  return { decision: record.decision, by: record.by, at: record.at, reason: record.reason, remember: record.remember };
}

/** The decision a history entry kept, for turns rebuilt from history. */
export function approvalFromHistory(entry) {
  return entry.approval ? { decided: decisionOf(entry.approval) } : null;
}

/** A key that changes whenever the approval's view does. */
export function approvalKey(tool) {
  const a = tool.approval;
  return a ? `${a.id}|${a.decided?.decision ?? ''}|${a.answering ? 1 : 0}` : '';
}

/** The card of a waiting call, or the line of a decided one; `rerender` redraws the row. */
export function approvalView(tool, rerender) {
  const approval = tool.approval;
  if (!approval) return null;
  if (approval.decided) return decidedView(approval.decided);
  const answer = async (decision, remember = 'once') => {
    approval.answering = true;
    rerender();
    try {
      await api('/api/chat/approve', { method: 'POST', json: { approval_id: approval.id, decision, remember } });
    } catch (error) {
      toast(`Could not answer: ${error.message}`, 'error');
    } finally {
      approval.answering = false;
      rerender();
    }
  };
  const disabled = approval.answering || undefined;
  return h('div', { class: 'approval', role: 'group', 'aria-label': 'Approval needed' },
    h('div', { class: 'approval-head' },
      h('strong', {}, 'Approval needed'),
      h('span', { class: 'approval-countdown', dataset: { expires: approval.expires_at || '' } }, remaining(approval.expires_at))),
    approval.commands.length
      ? h('div', { class: 'approval-commands' }, approval.commands.map((c) =>
        h('code', { class: `cmd cmd-${c.class}`, title: `${c.class}: ${c.why}` }, c.text)))
      : null,
    h('p', { class: 'approval-reason' }, approval.reason),
    h('div', { class: 'approval-actions' },
      h('button', { type: 'button', class: 'btn btn-primary', disabled, onclick: () => answer('approve') }, 'Approve'),
      h('button', { type: 'button', class: 'btn', disabled, onclick: () => answer('deny') }, 'Deny'),
      h('button', { type: 'button', class: 'btn', disabled, onclick: () => answer('approve', 'conversation') }, 'Always for this conversation')));
}

function decidedView(decided) {
  const approved = decided.decision === 'approve';
  const who = { timeout: 'nobody answered in time', policy: 'by the permission rules', stop: 'the turn was stopped' }[decided.by]
    || `by ${decided.by}`;
  const when = decided.at ? ` · ${new Date(decided.at).toLocaleTimeString()}` : '';
  const always = approved && decided.remember && decided.remember !== 'once' ? ' (remembered)' : '';
  return h('div', { class: `approval-decided ${approved ? 'approved' : 'denied'}`, title: decided.reason || '' },
    `${approved ? 'Approved' : 'Denied'} ${who}${always}${when}`);
}

function remaining(expiresAt) {
  const left = Math.max(0, Math.round((Date.parse(expiresAt) - Date.now()) / 1000));
  if (!Number.isFinite(left)) return '';
  return left >= 60 ? `${Math.floor(left / 60)} min ${left % 60} s left` : `${left} s left`;
}

// One ticker for every countdown on the page.
setInterval(() => {
  for (const el of document.querySelectorAll('.approval-countdown[data-expires]')) {
    el.textContent = remaining(el.dataset.expires);
  }
}, 1000);

let baseTitle = null;

function notify(event) {
  if (!document.hidden) return;
  const text = `${event.tool_name}: ${event.reason}`;
  if ('Notification' in window && Notification.permission === 'granted') {
    try { new Notification('OK Computer needs your approval', { body: text, tag: event.approval_id }); } catch { /* not allowed here */ }
  } else if ('Notification' in window && Notification.permission === 'default') {
    Notification.requestPermission().catch(() => {});
  }
  if (baseTitle === null) baseTitle = document.title;
  document.title = `(!) Approval needed — ${baseTitle}`;
}

document.addEventListener('visibilitychange', () => {
  if (!document.hidden && baseTitle !== null) {
    document.title = baseTitle;
    baseTitle = null;
  }
});
