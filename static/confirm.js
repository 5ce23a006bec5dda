// confirm.js — a keyboard-friendly confirmation dialog (a <dialog>, not window.confirm).

import { $ } from './dom.js';

/** Resolves true when the user confirms. */
export function confirmDialog(text, okLabel = 'Confirm') {
  const dialog = $('#confirm-dialog');
  $('#confirm-text').textContent = text;
  $('#confirm-ok').textContent = okLabel;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.returnValue = '';
    dialog.showModal();
    $('#confirm-cancel').focus();
  });
}
