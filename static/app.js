// app.js — the console's entry point: signs in when the server asks, wires the modules
// together, opens the last used conversation (or creates the first one), re-attaches to a
// turn that was still running, and handles the narrow-screen drawers.

import { $, toast } from './dom.js';
import { fillIcons } from './icons.js';
import { clientId, currentConversation } from './api.js';
import { state, on } from './state.js';
import { initChat, resumePending } from './chat.js';
import { initConversations, loadList, openConversation, createConversation } from './conversations.js';
import { initWorkspace } from './workspace.js';
import { initSettings } from './settings.js';
import { initContext } from './context.js';
import { whoAmI } from './signin.js';

function initDrawers() {
  const app = $('#app');
  const toggle = $('#toggle-sidebar');
  toggle.addEventListener('click', () => {
    const open = !app.classList.contains('side-open');
    app.classList.toggle('side-open', open);
    toggle.setAttribute('aria-expanded', String(open));
    if (open) $('#new-conversation').focus();
  });
  $('#scrim').addEventListener('click', () => {
    app.classList.remove('side-open', 'ws-open');
    toggle.setAttribute('aria-expanded', 'false');
    $('#toggle-workspace').setAttribute('aria-expanded', 'false');
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && (app.classList.contains('side-open') || app.classList.contains('ws-open')) && !document.querySelector('dialog[open]')) {
      app.classList.remove('side-open', 'ws-open');
    }
  });
}

async function start() {
  fillIcons();
  initDrawers();
  const me = await whoAmI();
  initChat();
  initConversations();
  initWorkspace();
  initContext();
  initSettings({ canChange: me.role === 'admin' });
  if (me.user) {
    $('#client-label').textContent = `Signed in as ${me.user}${me.role === 'admin' ? ' (admin)' : ''}`;
  } else {
    $('#client-label').textContent = `Client ${clientId}`;
    $('#client-label').title = 'This browser\'s client id';
  }
  on('conversation-opened', ({ boot }) => {
    if (boot?.meta?.model) $('#model-name').textContent = boot.meta.model;
    resumePending();
  });
  await loadList();
  const wanted = currentConversation();
  if (wanted && state.conversations.some((c) => c.id === wanted)) await openConversation(wanted);
  else if (state.conversations.length) await openConversation(state.conversations[0].id);
  else await createConversation();
  document.body.dataset.ready = 'true';
}

start().catch((error) => {
  toast(`The console cannot start: ${error.message} Reload the page to try again.`, 'error');
});
