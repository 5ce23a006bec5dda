// previews.js — rich results attached to a reply: a deployed site or tool HTML
// (`web_preview`), a slide deck outline (`ppt_slides`) and media/files (`artifacts`).
// Untrusted pages only ever go into <iframe sandbox="allow-scripts"> without
// allow-same-origin, so they run in an opaque origin and cannot act as the console.

import { h } from './dom.js';
import { icon } from './icons.js';
import { idUrl, currentConversation } from './api.js';

/** A URL the console may load: same-origin paths (with the ids added for /api/) or http(s). */
export function resolveUrl(raw, { forFrame = false } = {}) {
  if (typeof raw !== 'string' || !raw.trim()) return null;
  let url = raw.trim();
  if (/^https?:\/\//i.test(url)) {
    // This server's own absolute addresses (deployed sites) are used as paths, so they can be
    // framed and downloaded like the rest.
    try {
      const parsed = new URL(url);
      if (parsed.origin === location.origin) url = parsed.pathname + parsed.search + parsed.hash;
    } catch { return null; }
  }
  if (url.startsWith('/') && !url.startsWith('//')) {
    if (url.startsWith('/api/')) {
      const parsed = new URL(url, location.origin);
      const params = Object.fromEntries(parsed.searchParams);
      return forFrame ? frameUrl(parsed.pathname, params) : idUrl(parsed.pathname, params);
    }
    return url;
  }
  if (/^https?:\/\//i.test(url)) return url;
  return null;
}

/**
 * A URL for a sandboxed frame: only the conversation id goes in the query; the client id
 * travels in the SameSite=Strict cookie, so a page in the frame cannot read it from its own
 * location.
 */
export function frameUrl(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) if (k !== 'client_id') url.searchParams.set(k, v);
  const conversation = currentConversation();
  if (conversation) url.searchParams.set('conversation_id', conversation);
  return url.pathname + url.search;
}

/** An <iframe> that can run the page's scripts but never as the console's origin. */
export function sandboxedFrame({ src, srcdoc, title, className = 'site-frame' }) {
  const frame = h('iframe', {
    class: className,
    title: title || 'Sandboxed preview',
    sandbox: 'allow-scripts',
    referrerpolicy: 'no-referrer',
    loading: 'lazy',
  });
  if (srcdoc !== undefined) frame.srcdoc = srcdoc;
  else if (src) frame.src = src;
  return frame;
}

const isSameOrigin = (url) => url.startsWith('/');

function webPreviewCard(preview, openInPanel) {
  const url = resolveUrl(preview.url, { forFrame: true });
  const title = preview.title || (preview.deployment_id ? `Site ${preview.deployment_id}` : 'Web preview');
  const frame = url && isSameOrigin(url)
    ? sandboxedFrame({ src: url, title })
    : typeof preview.html === 'string'
      ? sandboxedFrame({ srcdoc: preview.html, title })
      : null;
  const openUrl = resolveUrl(preview.url);
  return h('section', { class: 'card web-preview' },
    h('div', { class: 'card-head' }, icon('globe', 16), title, h('span', { class: 'spacer' }),
      frame && openInPanel ? h('button', { type: 'button', class: 'btn btn-small',
        onclick: () => openInPanel({ kind: 'site', title, src: frame.src || null, html: preview.html }) }, 'Expand') : null,
      openUrl ? h('a', { class: 'btn btn-small', href: openUrl, target: '_blank', rel: 'noopener noreferrer' }, 'Open ↗') : null),
    frame || h('div', { class: 'card-body muted' }, 'The preview has no page to show.'));
}

function slidesCard(slides, artifacts) {
  const deck = (artifacts || []).find((a) => /\.pptx$/i.test(a?.name || a?.url || ''));
  const deckUrl = deck ? resolveUrl(deck.url) : null;
  return h('section', { class: 'card slides-card' },
    h('div', { class: 'card-head' }, icon('slides', 16), `Slides (${slides.length})`, h('span', { class: 'spacer' }),
      deckUrl ? h('a', { class: 'btn btn-small', href: deckUrl, download: deck.name || 'slides.pptx' }, 'Download .pptx') : null),
    h('div', { class: 'card-body slides' },
      slides.map((slide, i) => h('article', { class: 'slide' },
        h('span', { class: 'num' }, String(i + 1)),
        h('h5', {}, slide?.title || `Slide ${i + 1}`),
        Array.isArray(slide?.bullets) && slide.bullets.length
          ? h('ul', {}, slide.bullets.map((b) => h('li', {}, String(b)))) : null))));
}

function artifactView(artifact) {
  const name = artifact?.name || artifact?.url || 'file';
  const url = resolveUrl(artifact?.url);
  const type = String(artifact?.type || '').toLowerCase();
  const kind = /image/.test(type) || /\.(png|jpe?g|gif|webp|svg|bmp)$/i.test(name) ? 'image'
    : /audio/.test(type) || /\.(mp3|wav|ogg|m4a|flac|aac)$/i.test(name) ? 'audio'
      : /video/.test(type) || /\.(mp4|webm|mov)$/i.test(name) ? 'video' : 'file';
  if (!url) return h('div', { class: 'artifact' }, icon('file', 15), ` ${name}`);
  const media = isSameOrigin(url) && kind === 'image' ? h('img', { src: url, alt: name, loading: 'lazy' })
    : isSameOrigin(url) && kind === 'audio' ? h('audio', { controls: true, preload: 'metadata', src: url })
      : isSameOrigin(url) && kind === 'video' ? h('video', { controls: true, preload: 'metadata', src: url })
        : null;
  return h('div', { class: 'artifact' }, media,
    h('a', { href: url, ...(isSameOrigin(url) ? { download: name } : { target: '_blank', rel: 'noopener noreferrer' }) },
      icon(kind === 'image' ? 'image' : kind === 'file' ? 'file' : 'audio', 15), ` ${name}`));
}

/** The rich-result cards of one reply (empty array when it has none). */
export function richResults(version, openInPanel) {
  const cards = [];
  if (version.web_preview && (version.web_preview.url || version.web_preview.html)) {
    cards.push(webPreviewCard(version.web_preview, openInPanel));
  }
  if (Array.isArray(version.ppt_slides) && version.ppt_slides.length) {
    cards.push(slidesCard(version.ppt_slides, version.artifacts));
  }
  const artifacts = (version.artifacts || []).filter((a) => a && !/\.pptx$/i.test(a.name || a.url || '') ||
    !(version.ppt_slides || []).length);
  if (artifacts.length) {
    cards.push(h('section', { class: 'card' },
      h('div', { class: 'card-head' }, icon('clip', 16), `Files (${artifacts.length})`),
      h('div', { class: 'card-body artifacts' }, artifacts.map(artifactView))));
  }
  return cards;
}
