// mcp.js — the MCP part of the settings dialog: each configured MCP server with its state,
// its tool count (the tools themselves on hover) and its last error, from GET /api/mcp/servers.

import { h, $, replace } from './dom.js';
import { api } from './api.js';

function serverView(server) {
  return h('li', { class: `mcp-server mcp-${server.status}`, title: server.tools.join('\n') },
    h('strong', {}, server.name),
    ` — ${server.status}, ${server.tools.length} tool${server.tools.length === 1 ? '' : 's'} (${server.transport}, ${server.scope})`,
    server.last_error ? h('div', { class: 'small error' }, server.last_error) : null);
}

export async function loadMcp() {
  const box = $('#settings-mcp');
  replace(box);
  try {
    const { servers } = await api('/api/mcp/servers');
    if (!servers.length) return;
    replace(box, h('fieldset', { class: 'settings-section' },
      h('legend', {}, 'MCP servers'),
      h('p', { class: 'desc muted small' }, 'Set in okcvm.toml ([[mcp.servers]]); their tools are offered as mcp__server__tool.'),
      h('ul', { class: 'small mcp-servers' }, servers.map(serverView))));
  } catch (error) {
    replace(box, h('p', { class: 'form-status error' }, `Cannot list the MCP servers: ${error.message}`));
  }
}
