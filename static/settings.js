// settings.js — the settings dialog: the chat model endpoint and the media endpoints, read
// and saved through GET/POST /api/config. API keys are write-only: the server only says
// whether one is saved (`api_key_present`); an empty key field keeps the saved key, and
// "Clear the saved key" sends "" to remove it. Users who are not administrators see the
// endpoints without being able to save. The dialog also holds the conversation's
// permissions (policy.js), which its owner changes on their own, and the MCP servers'
// states (mcp.js).

import { h, $, replace, toast } from './dom.js';
import { api } from './api.js';
import { loadPolicy } from './policy.js';
import { loadMcp } from './mcp.js';

const SECTIONS = [
  { key: 'chat', title: 'Chat model', desc: 'The OpenAI-compatible endpoint the agent thinks with.', placeholderUrl: 'http://127.0.0.1:11434/v1', placeholderModel: 'qwen2.5:7b' },
  { key: 'image', title: 'Image generation', desc: 'Used by the image tools.', placeholderUrl: 'https://api.example.com/v1', placeholderModel: 'image model' },
  { key: 'speech', title: 'Speech (text to speech)', desc: 'Used to narrate audio.', placeholderUrl: 'https://api.example.com/v1', placeholderModel: 'tts model' },
  { key: 'sound_effects', title: 'Sound effects', desc: 'Used to generate sound effects.', placeholderUrl: 'https://api.example.com/v1', placeholderModel: 'sfx model' },
  { key: 'asr', title: 'Speech recognition', desc: 'Used to transcribe audio.', placeholderUrl: 'https://api.example.com/v1', placeholderModel: 'asr model' },
];

let current = null;

function status(text, kind = '') {
  const el = $('#settings-status');
  el.textContent = text;
  el.className = `form-status ${kind}`;
}

function sectionView(section, value) {
  const id = (name) => `cfg-${section.key}-${name}`;
  const configured = !!value;
  const keyState = value?.api_key_present ? 'A key is saved' : 'No key saved';
  const fields = h('div', { class: 'field-grid', id: id('fields'), hidden: !configured },
    h('label', { class: 'field', for: id('base_url') }, 'Base URL',
      h('input', { type: 'url', id: id('base_url'), name: 'base_url', placeholder: section.placeholderUrl, value: value?.base_url || '', autocomplete: 'off', spellcheck: 'false' })),
    h('label', { class: 'field', for: id('model') }, 'Model',
      h('input', { type: 'text', id: id('model'), name: 'model', placeholder: section.placeholderModel, value: value?.model || '', autocomplete: 'off', spellcheck: 'false' })),
    h('label', { class: 'field', for: id('api_key') },
      h('span', {}, 'API key ', h('span', { class: `key-state${value?.api_key_present ? ' saved' : ''}` }, `(${keyState})`)),
      h('input', { type: 'password', id: id('api_key'), name: 'api_key', autocomplete: 'new-password', spellcheck: 'false',
        placeholder: value?.api_key_present ? '•••••• saved — type to replace' : 'not set' })),
    h('div', { class: 'field' },
      h('label', { class: 'check' }, h('input', { type: 'checkbox', id: id('supports_streaming'), name: 'supports_streaming', checked: value ? value.supports_streaming !== false : true }), 'Stream responses'),
      value?.api_key_present ? h('label', { class: 'check' }, h('input', { type: 'checkbox', id: id('clear_key'), name: 'clear_key' }), 'Clear the saved key') : null));
  const enabled = h('input', { type: 'checkbox', id: id('enabled'), checked: configured });
  enabled.addEventListener('change', () => { fields.hidden = !enabled.checked; });
  return h('fieldset', { class: 'settings-section', dataset: { section: section.key } },
    h('legend', {}, section.title),
    h('p', { class: 'desc muted small' }, section.desc),
    h('label', { class: 'check' }, enabled, 'Configured'),
    fields);
}

function render(config) {
  current = config;
  replace($('#settings-sections'), SECTIONS.map((s) => sectionView(s, config?.[s.key] || null)));
}

function collect() {
  const body = {};
  const problems = [];
  for (const section of SECTIONS) {
    const field = (name) => $(`#cfg-${section.key}-${name}`);
    const before = current?.[section.key] || null;
    if (!field('enabled').checked) {
      if (before) body[section.key] = null;
      continue;
    }
    const baseUrl = field('base_url').value.trim();
    const model = field('model').value.trim();
    if (!baseUrl || !/^https?:\/\/\S+$/i.test(baseUrl)) problems.push(`${section.title}: the base URL must start with http:// or https://`);
    if (!model) problems.push(`${section.title}: the model name is required`);
    const next = { base_url: baseUrl, model, supports_streaming: field('supports_streaming').checked };
    const key = field('api_key').value.trim();
    if (key) next.api_key = key;
    else if (field('clear_key')?.checked) next.api_key = '';
    const changed = !before || before.base_url !== next.base_url || before.model !== next.model ||
      before.supports_streaming !== next.supports_streaming || 'api_key' in next;
    if (changed) body[section.key] = next;
  }
  return { body, problems };
}

async function load() {
  status('Loading…');
  replace($('#settings-sections'));
  try {
    render(await api('/api/config'));
    status('');
  } catch (error) {
    render(null);
    status(error.status === 404
      ? 'This server does not offer settings (GET /api/config is missing). Nothing can be saved here.'
      : `Cannot load the settings: ${error.message}`, 'error');
    $('#settings-save').disabled = true;
    return;
  }
  $('#settings-save').disabled = false;
}

async function save(event) {
  event.preventDefault();
  const { body, problems } = collect();
  if (problems.length) { status(problems.join(' · '), 'error'); return; }
  if (!Object.keys(body).length) { status('Nothing changed.', ''); return; }
  const button = $('#settings-save');
  button.disabled = true;
  status('Saving…');
  try {
    const config = await api('/api/config', { method: 'POST', json: body });
    render(config);
    status('Saved. New turns use these settings.', 'ok');
    toast('Settings saved', 'ok');
    const model = config?.chat?.model;
    if (model) $('#model-name').textContent = model;
  } catch (error) {
    status(`Not saved: ${error.message}`, 'error');
  } finally {
    button.disabled = false;
  }
}

/** `canChange`: the caller is an administrator (others may look, not save). */
export function initSettings({ canChange = true } = {}) {
  const dialog = $('#settings-dialog');
  $('#open-settings').addEventListener('click', async () => {
    dialog.showModal();
    await Promise.all([load(), loadPolicy(), loadMcp()]);
    if (!canChange) {
      for (const input of $('#settings-sections').querySelectorAll('input')) input.disabled = true;
      $('#settings-save').disabled = true;
      status('Only an administrator can change the endpoints.');
    }
  });
  const close = () => dialog.close();
  $('#settings-close').addEventListener('click', close);
  $('#settings-cancel').addEventListener('click', close);
  $('#settings-form').addEventListener('submit', save);
  dialog.addEventListener('close', () => replace($('#settings-sections')));
}
