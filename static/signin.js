// signin.js — the sign-in screen of a server with `[auth] mode = "token"`: asks for the
// token, checks it with GET /api/me before keeping it, and comes back whenever the server
// answers 401 (the token was removed). Sign out forgets the token and reloads.

import { $ } from './dom.js';
import { api, ApiError, setToken, hasToken, onUnauthorized } from './api.js';

let shown = false;

/** Shows the sign-in dialog; resolves with the caller once a token is accepted. */
function signIn(message = '') {
  const dialog = $('#signin-dialog');
  const input = $('#signin-token');
  const status = $('#signin-status');
  status.textContent = message;
  input.value = '';
  shown = true;
  return new Promise((resolve) => {
    const submit = async (event) => {
      event.preventDefault();
      const token = input.value.trim();
      if (!token) {
        status.textContent = 'Enter your token.';
        return;
      }
      setToken(token);
      try {
        const me = await api('/api/me');
        $('#signin-form').removeEventListener('submit', submit);
        shown = false;
        dialog.close();
        resolve(me);
      } catch (error) {
        setToken(null);
        status.textContent = error instanceof ApiError && error.status === 401
          ? 'That token is not valid. Check it and try again.'
          : error.message;
        input.focus();
      }
    };
    $('#signin-form').addEventListener('submit', submit);
    // The console is unusable without an identity: the dialog cannot be dismissed.
    dialog.addEventListener('cancel', (e) => e.preventDefault());
    dialog.showModal();
    input.focus();
  });
}

/**
 * Who the console runs as: `{user, role, auth_mode}`. Asks for a token first when the
 * server wants one; later 401s reload into the sign-in screen.
 */
export async function whoAmI() {
  let me;
  try {
    me = await api('/api/me');
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 401) throw error;
    // Behind an authenticating proxy the server's own words say what is wrong.
    const why = hasToken() ? 'Your token is no longer valid; sign in again.'
      : /proxy/.test(error.message) ? error.message : '';
    me = await signIn(why);
  }
  // A token removed meanwhile: reload into the sign-in screen (which says so).
  onUnauthorized(() => {
    if (!shown) location.reload();
  });
  const signOut = $('#sign-out');
  signOut.hidden = !me.user || me.auth_mode !== 'token';
  signOut.addEventListener('click', () => {
    setToken(null);
    location.reload();
  });
  return me;
}
