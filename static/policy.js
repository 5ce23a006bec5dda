// policy.js — the permissions part of the settings dialog: the preset this conversation runs
// under (its own, or the server's), the approvals it remembers, and the owner's standing
// approvals; read from GET /api/session/info and changed through PUT /api/session/permissions.
// Presets looser than the server allows are not offered.

import { h, $, replace, toast } from './dom.js';
import { api } from './api.js';

const MODES = [
  ['read-only', 'Read-only — anything that writes, runs code or reaches out asks first'],
  ['ask-risky', 'Ask for risky actions — deleting, the network, installing, deploys ask first'],
  ['auto', 'Automatic — everything inside the sandbox runs; only deny rules stop it'],
];
// Strictest first: an index at or below the loosest allowed one may be picked.
const order = (mode) => MODES.findIndex(([m]) => m === mode);

let current = null;

function rememberedList(items, empty) {
  if (!items?.length) return h('p', { class: 'muted small' }, empty);
  return h('ul', { class: 'small' }, items.map((r) => h('li', {}, h('code', {}, r.prefix || r.tool), r.prefix ? ` (${r.tool})` : '')));
}

function render(permissions) {
  current = permissions;
  const select = h('select', { id: 'policy-mode' },
    h('option', { value: '' }, `Server default (${permissions.server_mode})`),
    MODES.map(([mode, label]) => h('option', {
      value: mode,
      disabled: order(mode) > order(permissions.loosest_mode) || undefined,
      selected: permissions.conversation_mode === mode || undefined,
    }, label)));
  const forget = h('input', { type: 'checkbox', id: 'policy-forget' });
  const apply = h('button', { type: 'button', class: 'btn', id: 'policy-apply', onclick: save }, 'Apply to this conversation');
  replace($('#settings-permissions'), h('fieldset', { class: 'settings-section' },
    h('legend', {}, 'Permissions of this conversation'),
    h('p', { class: 'desc muted small' },
      `In force: ${permissions.mode}. A call that asks waits ${permissions.approval_timeout_secs} s for an answer, then is denied.`),
    h('label', { class: 'field', for: 'policy-mode' }, 'Preset', select),
    h('h4', { class: 'small' }, 'Approved for this conversation'),
    rememberedList(permissions.remembered, 'Nothing yet.'),
    h('h4', { class: 'small' }, 'Approved for all your conversations'),
    rememberedList(permissions.standing, 'Nothing.'),
    permissions.remembered?.length ? h('label', { class: 'check' }, forget, 'Forget the approvals of this conversation') : null,
    h('div', {}, apply)));
}

async function save() {
  const mode = $('#policy-mode').value || null;
  const forget = $('#policy-forget')?.checked || false;
  try {
    render(await api('/api/session/permissions', {
      method: 'PUT',
      json: { mode, tools: current?.tools || {}, forget_approvals: forget },
    }));
    toast('Permissions applied', 'ok');
  } catch (error) {
    toast(`Not applied: ${error.message}`, 'error');
  }
}

export async function loadPolicy() {
  replace($('#settings-permissions'));
  try {
    const info = await api('/api/session/info');
    if (info.permissions) render(info.permissions);
  } catch (error) {
    replace($('#settings-permissions'), h('p', { class: 'form-status error' }, `Cannot load the permissions: ${error.message}`));
  }
}
