// markdown.js — a small, safe Markdown renderer for model output. Everything is escaped
// first; only a fixed subset becomes markup (headings, paragraphs, emphasis, inline and
// fenced code, lists, block quotes, tables, rules, links). Links keep only http(s) and
// mailto targets and open with rel="noopener noreferrer"; images become plain links, so
// nothing is fetched from elsewhere. Unfinished input (a stream mid-way) renders sensibly.

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

function unescapeHtml(text) {
  return text.replace(/&(amp|lt|gt|quot|#39);/g, (m, name) =>
    ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'" })[name]);
}

/** The URL if it is an absolute http(s) or mailto link, else null. */
export function safeUrl(raw) {
  const url = raw.trim();
  if (/^(https?:\/\/|mailto:)/i.test(url) && !/[\s<>"'`]/.test(url)) return url;
  return null;
}

function link(text, url) {
  const safe = safeUrl(url);
  if (!safe) return text;
  return `<a href="${escapeHtml(safe)}" target="_blank" rel="noopener noreferrer">${text}</a>`;
}

/** Inline markup of one block of text (already split into lines by the caller). */
export function renderInline(source) {
  const slots = [];
  const keep = (html) => `\u0000${slots.push(html) - 1}\u0000`;
  let text = source.replace(/\u0000/g, '');
  // Code spans first: their content is literal.
  text = text.replace(/(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/g, (m, ticks, code) =>
    keep(`<code>${escapeHtml(code.trim() ? code.replace(/^ (.*) $/, '$1') : code)}</code>`));
  text = escapeHtml(text);
  // Images become links (nothing is loaded from elsewhere), then links.
  text = text.replace(/!\[([^\]]*)\]\(([^)\s]+)(?:\s+&quot;.*?&quot;)?\)/g, (m, alt, url) =>
    keep(link(alt || 'image', unescapeHtml(url))));
  text = text.replace(/\[([^\]]+)\]\(([^)\s]+)(?:\s+&quot;.*?&quot;)?\)/g, (m, label, url) =>
    keep(link(label, unescapeHtml(url))));
  text = text.replace(/(^|[\s(])((?:https?:\/\/)[^\s<]*[^\s<.,;:!?)\]'"&])/g, (m, lead, url) =>
    lead + keep(link(url, unescapeHtml(url))));
  text = text
    .replace(/\*\*(?=\S)([\s\S]*?\S)\*\*/g, '<strong>$1</strong>')
    .replace(/__(?=\S)([\s\S]*?\S)__/g, '<strong>$1</strong>')
    .replace(/(^|[^*\w])\*(?=\S)([^*]*?\S)\*(?!\*)/g, '$1<em>$2</em>')
    .replace(/(^|[^_\w])_(?=\S)([^_]*?\S)_(?![_\w])/g, '$1<em>$2</em>')
    .replace(/~~(?=\S)([\s\S]*?\S)~~/g, '<del>$1</del>')
    .replace(/\n/g, '<br>');
  return text.replace(/\u0000(\d+)\u0000/g, (m, i) => slots[Number(i)]);
}

const LIST_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const FENCE = /^\s{0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/;

function splitRow(line) {
  let row = line.trim();
  if (row.startsWith('|')) row = row.slice(1);
  if (row.endsWith('|') && !row.endsWith('\\|')) row = row.slice(0, -1);
  return row.split(/(?<!\\)\|/).map((cell) => cell.trim().replace(/\\\|/g, '|'));
}

function renderList(lines) {
  // lines: [{indent, ordered, text}] — nesting follows indentation.
  let html = '';
  const stack = [];
  for (const item of lines) {
    while (stack.length && item.indent < stack[stack.length - 1].indent) {
      html += `</li></${stack.pop().tag}>`;
    }
    let top = stack[stack.length - 1];
    if (top && item.indent === top.indent && top.tag !== (item.ordered ? 'ol' : 'ul')) {
      html += `</li></${stack.pop().tag}>`;
      top = stack[stack.length - 1];
    }
    if (!top || item.indent > top.indent) {
      const tag = item.ordered ? 'ol' : 'ul';
      const start = item.ordered && item.number !== 1 && !top ? ` start="${item.number}"` : '';
      html += `<${tag}${start}>`;
      stack.push({ indent: item.indent, tag });
    } else {
      html += '</li>';
    }
    const task = item.text.match(/^\[([ xX])\]\s+(.*)$/);
    html += task
      ? `<li class="task"><input type="checkbox" disabled${task[1] === ' ' ? '' : ' checked'}> ${renderInline(task[2])}`
      : `<li>${renderInline(item.text)}`;
  }
  while (stack.length) html += `</li></${stack.pop().tag}>`;
  return html;
}

/** Renders Markdown source to an HTML string that contains only the safe subset. */
export function renderMarkdown(source) {
  const lines = String(source ?? '').replace(/\r\n?/g, '\n').split('\n');
  const out = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(FENCE);
    if (fence) {
      const marker = fence[1];
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].trim().startsWith(marker)) body.push(lines[i++]);
      i += 1; // closing fence (or end of a still-streaming block)
      const lang = fence[2] ? ` data-lang="${escapeHtml(fence[2])}"` : '';
      out.push(`<pre${lang}><code>${escapeHtml(body.join('\n'))}</code></pre>`);
      continue;
    }
    if (!line.trim()) { i += 1; continue; }
    const heading = line.match(/^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/);
    if (heading) {
      const level = heading[1].length;
      out.push(`<h${level}>${renderInline(heading[2])}</h${level}>`);
      i += 1;
      continue;
    }
    if (/^\s{0,3}([-*_])(\s*\1){2,}\s*$/.test(line)) {
      out.push('<hr>');
      i += 1;
      continue;
    }
    if (/^\s{0,3}>/.test(line)) {
      const quoted = [];
      while (i < lines.length && /^\s{0,3}>/.test(lines[i])) {
        quoted.push(lines[i].replace(/^\s{0,3}>\s?/, ''));
        i += 1;
      }
      out.push(`<blockquote>${renderMarkdown(quoted.join('\n'))}</blockquote>`);
      continue;
    }
    if (line.includes('|') && i + 1 < lines.length &&
        /^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$/.test(lines[i + 1])) {
      const head = splitRow(line);
      const aligns = splitRow(lines[i + 1]).map((c) =>
        c.startsWith(':') && c.endsWith(':') ? 'center' : c.endsWith(':') ? 'right' : '');
      i += 2;
      const rows = [];
      while (i < lines.length && lines[i].includes('|') && lines[i].trim()) rows.push(splitRow(lines[i++]));
      const cell = (tag, text, col) =>
        `<${tag}${aligns[col] ? ` style="text-align:${aligns[col]}"` : ''}>${renderInline(text)}</${tag}>`;
      out.push('<div class="table-wrap"><table><thead><tr>' +
        head.map((c, col) => cell('th', c, col)).join('') + '</tr></thead><tbody>' +
        rows.map((r) => '<tr>' + head.map((_, col) => cell('td', r[col] ?? '', col)).join('') + '</tr>').join('') +
        '</tbody></table></div>');
      continue;
    }
    if (LIST_ITEM.test(line)) {
      const items = [];
      while (i < lines.length) {
        const m = lines[i].match(LIST_ITEM);
        if (m) {
          items.push({ indent: m[1].replace(/\t/g, '    ').length, ordered: /\d/.test(m[2]),
            number: parseInt(m[2], 10), text: m[3] });
          i += 1;
        } else if (lines[i].trim() && /^\s+/.test(lines[i]) && items.length) {
          items[items.length - 1].text += '\n' + lines[i].trim();
          i += 1;
        } else {
          break;
        }
      }
      out.push(renderList(items));
      continue;
    }
    const para = [];
    while (i < lines.length && lines[i].trim() && !FENCE.test(lines[i]) &&
           !/^\s{0,3}(#{1,6}\s|>)/.test(lines[i]) && !(para.length && LIST_ITEM.test(lines[i]))) {
      para.push(lines[i]);
      i += 1;
    }
    out.push(`<p>${renderInline(para.join('\n'))}</p>`);
  }
  return out.join('');
}
