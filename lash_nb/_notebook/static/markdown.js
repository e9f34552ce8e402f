// A small, safe markdown renderer for streamed assistant prose (no network, no CDN).
// Safety: every piece of source text is HTML-escaped before any tag is produced, and the only
// tags produced are a fixed list; link targets are limited to http(s) and mailto.
// Supported: fenced code, headings, paragraphs, lists (- * 1.), blockquotes, hr,
// inline code, **bold**, *italic* / _italic_, ~~strike~~, [text](url). An unclosed fence
// (mid-stream) renders as code so far.

function lashEscape(s) {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

function lashSafeHref(url) {
  const u = url.trim();
  return /^(https?:\/\/|mailto:)/i.test(u) ? u : null;
}

function lashInline(text) {
  // split out code spans first so nothing inside them is formatted
  const parts = text.split(/(`[^`\n]+`)/g);
  return parts.map((p) => {
    if (p.length > 1 && p.startsWith("`") && p.endsWith("`")) {
      return "<code>" + lashEscape(p.slice(1, -1)) + "</code>";
    }
    let s = lashEscape(p);
    s = s.replace(/\[([^\]\n]+)\]\(([^)\s]+)\)/g, (m, label, href) => {
      const safe = lashSafeHref(href.replace(/&amp;/g, "&"));
      return safe ? `<a href="${lashEscape(safe)}" target="_blank" rel="noopener noreferrer">${label}</a>` : m;
    });
    s = s.replace(/\*\*([^*\n]+)\*\*/g, "<strong>$1</strong>");
    s = s.replace(/__([^_\n]+)__/g, "<strong>$1</strong>");
    s = s.replace(/(^|[^*\w])\*([^*\n]+)\*(?!\w)/g, "$1<em>$2</em>");
    s = s.replace(/(^|[^_\w])_([^_\n]+)_(?!\w)/g, "$1<em>$2</em>");
    s = s.replace(/~~([^~\n]+)~~/g, "<del>$1</del>");
    return s;
  }).join("");
}

function renderMarkdown(src) {
  const lines = String(src || "").replace(/\r\n?/g, "\n").split("\n");
  const out = [];
  let para = [];
  let list = null; // {tag, items}
  let quote = [];
  const flushPara = () => {
    if (para.length) out.push("<p>" + para.map(lashInline).join("<br>") + "</p>");
    para = [];
  };
  const flushList = () => {
    if (list) out.push(`<${list.tag}>` + list.items.map((i) => "<li>" + lashInline(i) + "</li>").join("") + `</${list.tag}>`);
    list = null;
  };
  const flushQuote = () => {
    if (quote.length) out.push("<blockquote>" + renderMarkdown(quote.join("\n")) + "</blockquote>");
    quote = [];
  };
  const flushAll = () => { flushPara(); flushList(); flushQuote(); };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = line.match(/^\s*```\s*([\w+-]*)\s*$/);
    if (fence) {
      flushAll();
      const code = [];
      i++;
      while (i < lines.length && !/^\s*```\s*$/.test(lines[i])) code.push(lines[i++]);
      const cls = fence[1] ? ` class="language-${lashEscape(fence[1])}"` : "";
      out.push(`<pre><code${cls}>` + lashEscape(code.join("\n")) + "</code></pre>");
      continue;
    }
    if (/^\s*>/.test(line)) { flushPara(); flushList(); quote.push(line.replace(/^\s*>\s?/, "")); continue; }
    flushQuote();
    const h = line.match(/^(#{1,6})\s+(.*)$/);
    if (h) { flushAll(); out.push(`<h${h[1].length}>` + lashInline(h[2]) + `</h${h[1].length}>`); continue; }
    if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) { flushAll(); out.push("<hr>"); continue; }
    const ul = line.match(/^\s*[-*+]\s+(.*)$/);
    const ol = line.match(/^\s*\d+[.)]\s+(.*)$/);
    if (ul || ol) {
      flushPara();
      const tag = ul ? "ul" : "ol";
      if (!list || list.tag !== tag) { flushList(); list = { tag, items: [] }; }
      list.items.push((ul || ol)[1]);
      continue;
    }
    if (!line.trim()) { flushAll(); continue; }
    if (list && /^\s{2,}/.test(line)) { list.items[list.items.length - 1] += " " + line.trim(); continue; }
    flushList();
    para.push(line);
  }
  flushAll();
  return out.join("");
}
