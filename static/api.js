// api.js — the console's HTTP client. Every request carries the console's client id
// (`x-okc-client-id`, generated once and kept in localStorage), the open conversation
// (`x-okc-conversation-id`) and, on a server with sign-in, the user's token
// (`Authorization: Bearer`, kept in localStorage). URLs that cannot carry headers (downloads,
// media, frames) get the ids as query parameters and the token from a SameSite=Strict cookie.
// Errors become ApiError with the server's `detail` text; a 401 asks the person to sign in.

const CLIENT_KEY = 'okc.client_id';
const CONVERSATION_KEY = 'okc.conversation_id';
const TOKEN_KEY = 'okc.token';
const TOKEN_COOKIE = 'okcvm_token';

function randomId(prefix) {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function loadClientId() {
  let id = null;
  try { id = localStorage.getItem(CLIENT_KEY); } catch { /* storage disabled */ }
  if (!id || !/^[A-Za-z0-9._-]{1,128}$/.test(id)) {
    id = randomId('web-');
    try { localStorage.setItem(CLIENT_KEY, id); } catch { /* storage disabled */ }
  }
  return id;
}

export const clientId = loadClientId();
// The same id as a SameSite=Strict cookie: sandboxed preview frames are loaded without the
// id in their URL (a page could read its own URL), and their own requests never carry it.
document.cookie = `okc_client_id=${clientId}; path=/; SameSite=Strict`;
let conversationId = null;
try { conversationId = localStorage.getItem(CONVERSATION_KEY); } catch { /* storage disabled */ }

let token = null;
try { token = localStorage.getItem(TOKEN_KEY); } catch { /* storage disabled */ }

function setTokenCookie(value) {
  const secure = location.protocol === 'https:' ? '; Secure' : '';
  document.cookie = value
    ? `${TOKEN_COOKIE}=${encodeURIComponent(value)}; path=/; SameSite=Strict${secure}`
    : `${TOKEN_COOKIE}=; path=/; SameSite=Strict; max-age=0${secure}`;
}
setTokenCookie(token);

/** Keeps `value` as the sign-in token (null signs out). */
export function setToken(value) {
  token = value || null;
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch { /* storage disabled */ }
  setTokenCookie(token);
}

export function hasToken() {
  return Boolean(token);
}

const unauthorizedListeners = [];
/** Calls `listener` whenever the server answers 401 (no or no longer a valid token). */
export function onUnauthorized(listener) {
  unauthorizedListeners.push(listener);
}

export function newConversationId() {
  return randomId('conv-');
}

export function currentConversation() {
  return conversationId;
}

export function setConversation(id) {
  conversationId = id;
  try { localStorage.setItem(CONVERSATION_KEY, id); } catch { /* storage disabled */ }
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `request failed (${status})`);
    this.status = status;
  }
}

/** Headers that identify this console and conversation. */
export function identityHeaders(extra = {}) {
  const headers = { 'x-okc-client-id': clientId, ...extra };
  if (conversationId) headers['x-okc-conversation-id'] = conversationId;
  if (token) headers.authorization = `Bearer ${token}`;
  return headers;
}

/** A same-origin URL with the ids as query parameters (for links, media, frames). */
export function idUrl(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  url.searchParams.set('client_id', clientId);
  if (conversationId) url.searchParams.set('conversation_id', conversationId);
  return url.pathname + url.search;
}

async function detailOf(response) {
  try {
    const body = await response.json();
    if (body && typeof body.detail === 'string') return body.detail;
  } catch { /* not JSON */ }
  return `${response.status} ${response.statusText}`.trim();
}

/** Sends a request and returns the raw Response (throws ApiError on a non-2xx status). */
/** The largest body sent as a keepalive request (browsers refuse more than 64 KiB). */
const KEEPALIVE_MAX_BODY = 60 * 1024;

export async function request(path, { method = 'GET', json, body, headers = {}, signal, keepalive = false } = {}) {
  const init = { method, headers: identityHeaders(headers), signal, credentials: 'same-origin' };
  if (json !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(json);
    // A keepalive request outlives a reload of the page, but browsers cap its body at 64 KiB.
    if (keepalive && new Blob([init.body]).size < KEEPALIVE_MAX_BODY) init.keepalive = true;
  } else if (body !== undefined) {
    init.body = body;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === 'AbortError') throw error;
    throw new ApiError(0, 'The server cannot be reached.');
  }
  if (response.status === 401) for (const listener of unauthorizedListeners) listener();
  if (!response.ok) throw new ApiError(response.status, await detailOf(response));
  return response;
}

/** Sends a request and parses the JSON answer. */
export async function api(path, options) {
  const response = await request(path, options);
  if (response.status === 204) return null;
  return response.json();
}
