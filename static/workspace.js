// workspace.js — the workspace panel: the session's file tree with download and preview
// (text/code, images, audio/video, PDF and HTML in sandboxed frames), uploads by picker and
// drag-and-drop within the server's limits, and the snapshot list with restore.

import { h, $, replace, formatBytes, formatTime, toast } from './dom.js';
import { icon } from './icons.js';
import { api, request, idUrl } from './api.js';
import { state, on, emit, applyLimits } from './state.js';
import { frameUrl, sandboxedFrame } from './previews.js';
import { confirmDialog } from './confirm.js';

const TEXT_EXT = /\.(txt|md|markdown|json|jsonl|csv|tsv|py|js|mjs|ts|tsx|jsx|rs|go|java|c|h|cpp|hpp|cs|rb|php|sh|bash|zsh|toml|ya?ml|ini|cfg|conf|xml|css|scss|sql|log|r|jl|kt|swift|lua|pl|tex|bib|env|gitignore|dockerfile|makefile|srt|vtt)$/i;
const IMAGE_EXT = /\.(png|jpe?g|gif|webp|svg|bmp|ico|avif)$/i;
const AUDIO_EXT = /\.(mp3|wav|ogg|oga|m4a|flac|aac|opus)$/i;
const VIDEO_EXT = /\.(mp4|webm|mov|m4v)$/i;
const HTML_EXT = /\.html?$/i;
const PDF_EXT = /\.pdf$/i;
const MAX_TEXT_PREVIEW = 512 * 1024;

let files = [];
let selected = null;
let objectUrl = null;

const downloadUrl = (path) => idUrl('/api/session/workspace/file', { path });

/* ---------- tabs ---------- */

function selectTab(name) {
  for (const tab of ['files', 'snapshots', 'preview']) {
    const button = $(`#tab-${tab}`);
    const on = tab === name;
    button.setAttribute('aria-selected', String(on));
    button.tabIndex = on ? 0 : -1;
    $(`#panel-${tab}`).hidden = !on;
  }
  if (name !== 'preview') $('#app').classList.remove('ws-wide');
}

function initTabs() {
  const tabs = ['files', 'snapshots', 'preview'];
  tabs.forEach((name, i) => {
    const button = $(`#tab-${name}`);
    button.addEventListener('click', () => selectTab(name));
    button.addEventListener('keydown', (e) => {
      const step = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
      if (!step) return;
      const next = tabs[(i + step + tabs.length) % tabs.length];
      selectTab(next);
      $(`#tab-${next}`).focus();
    });
  });
}

/* ---------- file tree ---------- */

function buildTree(entries) {
  const root = { children: new Map() };
  for (const entry of entries) {
    const parts = entry.relative_path.split('/').filter(Boolean);
    let node = root;
    parts.forEach((part, i) => {
      if (!node.children.has(part)) node.children.set(part, { name: part, children: new Map(), entry: null });
      node = node.children.get(part);
      if (i === parts.length - 1) node.entry = entry;
    });
  }
  return root;
}

function treeNodes(node, depth) {
  const nodes = [...node.children.values()].sort((a, b) => {
    const ad = a.entry?.is_dir || a.children.size > 0;
    const bd = b.entry?.is_dir || b.children.size > 0;
    return ad === bd ? a.name.localeCompare(b.name) : ad ? -1 : 1;
  });
  return nodes.map((child) => {
    const isDir = child.entry?.is_dir || child.children.size > 0;
    if (isDir) {
      return h('details', { class: 'tree-dir', open: depth < 2, role: 'treeitem' },
        h('summary', { class: 'tree-row' }, icon('folder', 15), h('span', { class: 'name' }, child.name),
          h('span', { class: 'size' }, `${child.children.size}`)),
        h('div', { class: 'tree-children', role: 'group' }, treeNodes(child, depth + 1)));
    }
    const entry = child.entry;
    return h('div', { class: `tree-row tree-file${selected === entry.path ? ' selected' : ''}`, role: 'treeitem', dataset: { path: entry.path } },
      h('span', { 'aria-hidden': 'true' }, iconFor(entry.name)),
      h('button', { type: 'button', class: 'name', title: `Preview ${entry.path}`, onclick: () => preview(entry) }, entry.name),
      h('span', { class: 'size' }, entry.size_display || formatBytes(entry.size_bytes)),
      h('a', { class: 'dl', href: downloadUrl(entry.path), download: entry.name, title: `Download ${entry.name}`, 'aria-label': `Download ${entry.name}` }, icon('download', 15)));
  });
}

function iconFor(name) {
  if (IMAGE_EXT.test(name)) return icon('image', 15);
  if (AUDIO_EXT.test(name) || VIDEO_EXT.test(name)) return icon('audio', 15);
  if (HTML_EXT.test(name)) return icon('globe', 15);
  if (/\.pptx?$/i.test(name)) return icon('slides', 15);
  return icon('file', 15);
}

function renderTree(truncated) {
  const tree = $('#file-tree');
  const visible = files.filter((f) => !f.relative_path.split('/').some((p) => p.startsWith('.git')));
  if (!visible.length) {
    replace(tree, h('p', { class: 'muted small' }, 'The workspace is empty. Files the agent writes and files you upload appear here.'));
    return;
  }
  replace(tree, treeNodes(buildTree(visible), 0),
    truncated ? h('p', { class: 'muted small' }, 'The list is cut: the workspace has more files.') : null);
}

export async function refreshFiles() {
  if (!state.conv) return;
  try {
    const body = await api('/api/session/workspace/files');
    files = body.files || [];
    renderTree(body.truncated);
  } catch (error) {
    replace($('#file-tree'), h('p', { class: 'error-bubble' }, `Cannot list the workspace: ${error.message}`));
  }
}

/* ---------- preview ---------- */

function previewHead(entry) {
  return h('div', { class: 'preview-head' },
    h('span', { class: 'path', title: entry.path }, entry.path),
    h('a', { class: 'btn btn-small', href: downloadUrl(entry.path), download: entry.name }, 'Download'));
}

export async function preview(entry) {
  selected = entry.path;
  renderTree();
  selectTab('preview');
  openPanel();
  const box = $('#preview');
  if (objectUrl) { URL.revokeObjectURL(objectUrl); objectUrl = null; }
  replace(box, previewHead(entry), h('p', { class: 'muted' }, 'Loading…'));
  const name = entry.name;
  try {
    let body;
    $('#app').classList.toggle('ws-wide', HTML_EXT.test(name) || PDF_EXT.test(name));
    if (HTML_EXT.test(name)) {
      body = [
        sandboxedFrame({ src: frameUrl('/api/session/workspace/file', { path: entry.path }), title: `Preview of ${name}`, className: 'preview-frame' }),
        h('p', { class: 'muted small' }, 'Shown in a sandboxed frame: the page cannot reach the console or act as you.'),
      ];
    } else if (PDF_EXT.test(name)) {
      body = [
        sandboxedFrame({ src: frameUrl('/api/session/workspace/file', { path: entry.path }), title: `Preview of ${name}`, className: 'preview-frame' }),
        h('p', { class: 'muted small' }, 'If the PDF does not show, use Download.'),
      ];
    } else if (IMAGE_EXT.test(name)) {
      const blob = await (await request('/api/session/workspace/file?' + new URLSearchParams({ path: entry.path }))).blob();
      objectUrl = URL.createObjectURL(blob);
      body = h('img', { src: objectUrl, alt: name });
    } else if (AUDIO_EXT.test(name)) {
      body = h('audio', { controls: true, preload: 'metadata', src: downloadUrl(entry.path) });
    } else if (VIDEO_EXT.test(name)) {
      body = h('video', { controls: true, preload: 'metadata', src: downloadUrl(entry.path) });
    } else if (TEXT_EXT.test(name) || entry.size_bytes <= MAX_TEXT_PREVIEW) {
      const response = await request('/api/session/workspace/file?' + new URLSearchParams({ path: entry.path }));
      const blob = await response.blob();
      const bytes = new Uint8Array(await blob.slice(0, MAX_TEXT_PREVIEW).arrayBuffer());
      const binary = !TEXT_EXT.test(name) && bytes.slice(0, 4096).some((b) => b === 0);
      body = binary
        ? h('p', { class: 'muted' }, 'This file has no preview. Download it to open it.')
        : [h('pre', { class: 'text-preview' }, new TextDecoder().decode(bytes)),
          blob.size > MAX_TEXT_PREVIEW ? h('p', { class: 'muted small' }, `Showing the first ${formatBytes(MAX_TEXT_PREVIEW)} of ${formatBytes(blob.size)}.`) : null];
    } else {
      body = h('p', { class: 'muted' }, 'This file has no preview. Download it to open it.');
    }
    if (selected === entry.path) replace(box, previewHead(entry), body);
  } catch (error) {
    replace(box, previewHead(entry), h('p', { class: 'error-bubble' }, `Cannot preview: ${error.message}`));
  }
}

/** Shows a site or HTML from a reply in the preview tab. */
function previewSite({ title, src, html }) {
  selectTab('preview');
  $('#app').classList.add('ws-wide');
  openPanel();
  const frame = src ? sandboxedFrame({ src, title, className: 'preview-frame' })
    : sandboxedFrame({ srcdoc: html || '', title, className: 'preview-frame' });
  replace($('#preview'), h('div', { class: 'preview-head' }, h('span', { class: 'path' }, title || 'Preview')), frame);
}

/* ---------- uploads ---------- */

function renderLimits() {
  const { files: max, mbPerFile } = state.limits;
  $('#upload-limits').textContent = `${state.uploads.length} of ${max} files uploaded · up to ${mbPerFile} MB each`;
}

export async function upload(fileList) {
  const chosen = [...fileList];
  if (!chosen.length || !state.conv) return;
  const { files: max, bytesPerFile, mbPerFile } = state.limits;
  const tooBig = chosen.filter((f) => f.size > bytesPerFile);
  if (tooBig.length) {
    toast(`${tooBig.map((f) => f.name).join(', ')}: over the ${mbPerFile} MB limit per file.`, 'error');
    return;
  }
  if (state.uploads.length + chosen.length > max) {
    toast(`At most ${max} files per conversation (${state.uploads.length} already uploaded).`, 'error');
    return;
  }
  const names = chosen.map((f) => f.name);
  if (new Set(names).size !== names.length) {
    toast('Two of the chosen files have the same name.', 'error');
    return;
  }
  const form = new FormData();
  for (const file of chosen) form.append('files', file, file.name);
  const progress = $('#upload-progress');
  progress.textContent = `Uploading ${chosen.length} file${chosen.length > 1 ? 's' : ''}…`;
  try {
    const body = await api('/api/session/files', { method: 'POST', body: form });
    applyLimits(body);
    progress.textContent = '';
    toast(`Uploaded ${names.join(', ')}`, 'ok');
    selectTab('files');
    await refreshFiles();
  } catch (error) {
    progress.textContent = '';
    toast(`Upload failed: ${error.message}`, 'error');
  }
}

function initUploads() {
  const input = $('#file-input');
  const zone = $('#dropzone');
  const pick = () => input.click();
  zone.addEventListener('click', pick);
  zone.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); pick(); } });
  $('#attach').addEventListener('click', pick);
  input.addEventListener('change', () => { upload(input.files); input.value = ''; });
  const overlay = $('#drop-overlay');
  let depth = 0;
  const hasFiles = (e) => [...(e.dataTransfer?.types || [])].includes('Files');
  window.addEventListener('dragenter', (e) => { if (!hasFiles(e)) return; depth += 1; overlay.hidden = false; e.preventDefault(); });
  window.addEventListener('dragover', (e) => { if (hasFiles(e)) e.preventDefault(); });
  window.addEventListener('dragleave', () => { depth = Math.max(0, depth - 1); if (!depth) overlay.hidden = true; });
  window.addEventListener('drop', (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    depth = 0;
    overlay.hidden = true;
    upload(e.dataTransfer.files);
  });
}

/* ---------- snapshots ---------- */

function renderSnapshots() {
  const ws = state.workspace;
  const list = $('#snapshot-list');
  const git = ws?.git || {};
  $('#git-state').textContent = ws?.enabled === false ? 'Snapshots are off.'
    : `${git.branch ? `branch ${git.branch}` : 'detached'}${git.commit ? ` · ${git.commit.slice(0, 8)}` : ''}${git.is_dirty ? ' · unsaved changes' : ''}`;
  const snapshots = ws?.snapshots || [];
  if (!snapshots.length) {
    replace(list, h('li', { class: 'muted small' }, 'No snapshots yet. One is taken at the end of every turn.'));
    return;
  }
  replace(list, snapshots.map((snap) => h('li', { class: `snapshot${git.commit && git.commit === snap.id ? ' current' : ''}` },
    h('div', { class: 'info' },
      h('span', { class: 'label', title: snap.label }, snap.label || 'Snapshot'),
      h('span', { class: 'when' }, `${snap.id.slice(0, 8)} · ${formatTime(snap.timestamp)}`)),
    h('button', { type: 'button', class: 'btn btn-small', disabled: state.busy, onclick: () => restore(snap) }, 'Restore'))));
}

async function restore(snap) {
  const ok = await confirmDialog(`Restore the workspace to “${snap.label || snap.id.slice(0, 8)}”? Files changed since then are replaced.`, 'Restore');
  if (!ok) return;
  try {
    const body = await api('/api/session/workspace/restore', { method: 'POST', json: { snapshot_id: snap.id, checkout: true } });
    state.workspace = body.workspace_state;
    toast('Workspace restored', 'ok');
    renderSnapshots();
    refreshFiles();
  } catch (error) {
    toast(`Cannot restore: ${error.message}`, 'error');
  }
}

export async function refreshSnapshots() {
  if (!state.conv) return;
  try {
    state.workspace = await api('/api/session/workspace/snapshots?limit=50');
  } catch (error) {
    toast(`Cannot list snapshots: ${error.message}`, 'error');
  }
  renderSnapshots();
}

async function takeSnapshot() {
  try {
    state.workspace = await api('/api/session/workspace/snapshots', { method: 'POST', json: { label: `Manual snapshot ${new Date().toLocaleString()}` } });
    toast('Snapshot taken', 'ok');
    renderSnapshots();
  } catch (error) {
    toast(`Cannot take a snapshot: ${error.message}`, 'error');
  }
}

/* ---------- panel ---------- */

function openPanel() {
  const app = $('#app');
  if (matchMedia('(max-width: 1100px)').matches) app.classList.add('ws-open');
  app.classList.remove('ws-hidden');
  $('#toggle-workspace').setAttribute('aria-expanded', 'true');
}

function togglePanel() {
  const app = $('#app');
  const narrow = matchMedia('(max-width: 1100px)').matches;
  if (narrow) {
    const open = !app.classList.contains('ws-open');
    app.classList.toggle('ws-open', open);
    $('#toggle-workspace').setAttribute('aria-expanded', String(open));
    if (open) $('#tab-files').focus();
  } else {
    const hidden = !app.classList.contains('ws-hidden');
    app.classList.toggle('ws-hidden', hidden);
    $('#toggle-workspace').setAttribute('aria-expanded', String(!hidden));
  }
}

export function initWorkspace() {
  initTabs();
  initUploads();
  $('#toggle-workspace').setAttribute('aria-expanded', String(!matchMedia('(max-width: 1100px)').matches));
  $('#toggle-workspace').addEventListener('click', togglePanel);
  $('#ws-close').addEventListener('click', () => { $('#app').classList.remove('ws-open'); $('#toggle-workspace').setAttribute('aria-expanded', 'false'); });
  $('#ws-refresh').addEventListener('click', () => { refreshFiles(); refreshSnapshots(); });
  $('#take-snapshot').addEventListener('click', takeSnapshot);
  on('limits', renderLimits);
  on('workspace-state', renderSnapshots);
  on('workspace-changed', () => refreshFiles());
  on('turn-finished', () => { refreshFiles(); renderSnapshots(); });
  on('busy', () => renderSnapshots());
  on('open-preview', previewSite);
  on('conversation-opened', ({ boot }) => {
    selected = null;
    replace($('#preview'), h('p', { class: 'muted' }, 'Select a file, or open a preview from a reply.'));
    selectTab('files');
    if (boot) applyLimits(boot);
    renderSnapshots();
    refreshFiles();
  });
  renderLimits();
  emit('workspace-ready');
}
