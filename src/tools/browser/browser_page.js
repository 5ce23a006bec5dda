// The page side of the browser tools (evaluated in the page by src/tools/browser.rs).
// One function of a command {op, ...}: "state" numbers the interactive elements in view
// (data-okc-index) and collects the visible text; "click", "input", "scroll" and "find" act
// on the page. Errors come back as {error} for the model to read.
(command) => {
  const MAX_ELEMENTS = 150;
  const MAX_TEXT = 8000;
  const clean = (text) => String(text || '').replace(/\s+/g, ' ').trim();
  const shown = (el) => {
    const rect = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    return rect.width > 0 && rect.height > 0 && style.visibility !== 'hidden' && style.display !== 'none';
  };
  const inView = (rect) => rect.bottom > 0 && rect.top < innerHeight && rect.right > 0 && rect.left < innerWidth;
  const marked = (index) => document.querySelector(`[data-okc-index="${Number(index)}"]`);
  const missing = (index) => ({ error: `there is no element [${index}] in view; call browser_state for the current list` });

  if (command.op === 'click') {
    const el = marked(command.index);
    if (!el) return missing(command.index);
    el.scrollIntoView({ block: 'center' });
    el.click();
    return { ok: true };
  }

  if (command.op === 'input') {
    const el = marked(command.index);
    if (!el) return missing(command.index);
    el.scrollIntoView({ block: 'center' });
    el.focus();
    if (el.isContentEditable) {
      el.textContent = command.text;
    } else if ('value' in el) {
      const proto = Object.getPrototypeOf(el);
      const setter = Object.getOwnPropertyDescriptor(proto, 'value')?.set;
      if (setter) setter.call(el, command.text); else el.value = command.text;
    } else {
      return { error: `element [${command.index}] does not take text` };
    }
    el.dispatchEvent(new Event('input', { bubbles: true }));
    el.dispatchEvent(new Event('change', { bubbles: true }));
    if (command.submit) {
      const options = { key: 'Enter', code: 'Enter', keyCode: 13, bubbles: true, cancelable: true };
      const proceed = el.dispatchEvent(new KeyboardEvent('keydown', options));
      el.dispatchEvent(new KeyboardEvent('keyup', options));
      if (proceed && el.form) {
        if (el.form.requestSubmit) el.form.requestSubmit(); else el.form.submit();
      }
    }
    return { ok: true };
  }

  if (command.op === 'scroll') {
    const amount = command.amount ?? (command.down ? 1 : -1) * Math.round(innerHeight * 0.8);
    window.scrollBy(0, amount);
    return { ok: true };
  }

  if (command.op === 'find') {
    const text = clean(document.body ? document.body.innerText : '');
    const needle = String(command.keyword).toLowerCase();
    const haystack = text.toLowerCase();
    const matches = [];
    let total = 0;
    let at = haystack.indexOf(needle);
    while (at >= 0) {
      total += 1;
      if (total > command.skip && matches.length < 10) {
        matches.push(text.slice(Math.max(0, at - 80), at + needle.length + 80));
      }
      at = haystack.indexOf(needle, at + needle.length);
    }
    if (matches.length && window.find) {
      window.getSelection()?.removeAllRanges();
      for (let i = 0; i <= command.skip; i += 1) window.find(command.keyword, false, false, true);
    }
    return { total, matches };
  }

  // state
  for (const el of document.querySelectorAll('[data-okc-index]')) el.removeAttribute('data-okc-index');
  const selector = 'a[href], button, input:not([type=hidden]), textarea, select, summary, '
    + '[role=button], [role=link], [role=checkbox], [role=tab], [role=menuitem], [onclick], [contenteditable=true]';
  const elements = [];
  for (const el of document.querySelectorAll(selector)) {
    if (elements.length >= MAX_ELEMENTS) break;
    if (!shown(el) || !inView(el.getBoundingClientRect())) continue;
    const index = elements.length + 1;
    el.setAttribute('data-okc-index', String(index));
    const tag = el.tagName.toLowerCase();
    const label = clean(el.innerText || el.getAttribute('aria-label') || el.getAttribute('title')
      || el.getAttribute('alt') || el.getAttribute('placeholder') || el.getAttribute('name')
      || (tag === 'input' && ['submit', 'button'].includes(el.type) ? el.value : '')).slice(0, 80);
    const typed = ['input', 'textarea', 'select'].includes(tag) && !['submit', 'button'].includes(el.type);
    elements.push({
      index,
      tag,
      type: tag === 'input' ? (el.getAttribute('type') || 'text') : '',
      label,
      href: tag === 'a' ? el.href : '',
      value: typed ? clean(el.value).slice(0, 80) : '',
    });
  }
  let text = '';
  if (document.body) {
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    const range = document.createRange();
    let node;
    while ((node = walker.nextNode()) && text.length < MAX_TEXT) {
      const piece = clean(node.textContent);
      const parent = node.parentElement;
      if (!piece || !parent || ['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE'].includes(parent.tagName)) continue;
      if (!shown(parent)) continue;
      range.selectNodeContents(node);
      if (!inView(range.getBoundingClientRect())) continue;
      text += `${piece}\n`;
    }
  }
  return {
    url: location.href,
    title: document.title,
    scroll_y: Math.round(scrollY),
    scroll_height: document.documentElement ? document.documentElement.scrollHeight : 0,
    viewport: innerHeight,
    elements,
    text: text.slice(0, MAX_TEXT),
  };
}
