// state.js — the console's shared state and a small event bus, so modules can react to each
// other (a finished turn refreshes the workspace, a switched conversation re-renders the chat)
// without importing each other in circles.

export const state = {
  /** Conversation records of this client, newest first (the server's JSON, kept as given). */
  conversations: [],
  /** The open conversation's JSON: {id, title, turns, last_seq, pending, ...}. */
  conv: null,
  /** The last `/api/session/boot` answer of the open conversation. */
  boot: null,
  /** The session's `workspace_state`. */
  workspace: null,
  uploads: [],
  limits: { files: 100, bytesPerFile: 100 * 1024 * 1024, mbPerFile: 100 },
  /** True while a turn runs in the open conversation. */
  busy: false,
  /** True while the console switches to another conversation (nothing can be sent meanwhile). */
  switching: false,
};

const bus = new EventTarget();

export function emit(name, detail) {
  bus.dispatchEvent(new CustomEvent(name, { detail }));
}

export function on(name, handler) {
  bus.addEventListener(name, (event) => handler(event.detail));
}

/** Applies the upload limits and list of a boot/chat/upload answer. */
export function applyLimits(body) {
  if (!body) return;
  const files = body.upload_limit ?? body.limit;
  const mb = body.max_upload_size_mb ?? body.max_file_size_mb;
  const bytes = body.max_upload_size_bytes ?? body.max_file_size_bytes;
  if (Number.isFinite(files)) state.limits.files = files;
  if (Number.isFinite(mb)) state.limits.mbPerFile = mb;
  if (Number.isFinite(bytes)) state.limits.bytesPerFile = bytes;
  const uploads = body.uploads ?? body.files;
  if (Array.isArray(uploads)) state.uploads = uploads;
  emit('limits');
}
