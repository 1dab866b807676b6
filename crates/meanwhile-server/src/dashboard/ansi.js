// Terminal output to DOM: SGR colours and styles become spans (16 colours by class,
// 256 and 24-bit by a computed colour), other escape sequences are dropped, and a
// carriage return inside a line keeps what was written after it (a progress bar's
// last state). The renderer is fed chunk by chunk: a line or an escape sequence cut
// at a chunk's end is finished by the next.

const ESC = /\x1b(?:\[([0-9;:?<=>]*)[ -\/]*([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\|$)|[PX^_][^\x1b]*(?:\x1b\\|$)|[ -\/]*[0-~]|$)/g;

function color256(n) {
  if (n < 16) return null;
  if (n >= 232) {
    const v = 8 + (n - 232) * 10;
    return `rgb(${v},${v},${v})`;
  }
  n -= 16;
  const c = (x) => (x === 0 ? 0 : 55 + x * 40);
  return `rgb(${c(Math.floor(n / 36))},${c(Math.floor(n / 6) % 6)},${c(n % 6)})`;
}

/** The style in force: what the SGR codes so far set. */
class Style {
  constructor() { this.reset(); }
  reset() {
    this.fg = null; this.bg = null; this.fgRgb = null; this.bgRgb = null;
    this.bold = false; this.dim = false; this.italic = false; this.underline = false; this.inverse = false;
  }
  clone() { return Object.assign(new Style(), this); }
  plain() {
    return !this.fg && !this.bg && !this.fgRgb && !this.bgRgb && !this.bold && !this.dim &&
      !this.italic && !this.underline && !this.inverse;
  }
  apply(params) {
    const p = params === '' ? [0] : params.split(/[;:]/).map((x) => (x === '' ? 0 : Number(x)));
    for (let i = 0; i < p.length; i++) {
      const c = p[i];
      if (c === 0) this.reset();
      else if (c === 1) this.bold = true;
      else if (c === 2) this.dim = true;
      else if (c === 3) this.italic = true;
      else if (c === 4) this.underline = true;
      else if (c === 7) this.inverse = true;
      else if (c === 22) { this.bold = false; this.dim = false; }
      else if (c === 23) this.italic = false;
      else if (c === 24) this.underline = false;
      else if (c === 27) this.inverse = false;
      else if ((c >= 30 && c <= 37) || (c >= 90 && c <= 97)) { this.fg = c >= 90 ? c - 90 + 8 : c - 30; this.fgRgb = null; }
      else if (c === 39) { this.fg = null; this.fgRgb = null; }
      else if ((c >= 40 && c <= 47) || (c >= 100 && c <= 107)) { this.bg = c >= 100 ? c - 100 + 8 : c - 40; this.bgRgb = null; }
      else if (c === 49) { this.bg = null; this.bgRgb = null; }
      else if (c === 38 || c === 48) {
        let rgb = null, idx = null;
        if (p[i + 1] === 5) { const n = p[i + 2] ?? 0; if (n < 16) idx = n; else rgb = color256(n); i += 2; }
        else if (p[i + 1] === 2) { rgb = `rgb(${p[i + 2] ?? 0},${p[i + 3] ?? 0},${p[i + 4] ?? 0})`; i += 4; }
        if (c === 38) { this.fg = idx; this.fgRgb = rgb; } else { this.bg = idx; this.bgRgb = rgb; }
      }
    }
  }
  span(text) {
    if (this.plain()) return document.createTextNode(text);
    const s = document.createElement('span');
    const cls = [];
    let [fg, bg, fgRgb, bgRgb] = [this.fg, this.bg, this.fgRgb, this.bgRgb];
    if (this.inverse) { [fg, bg, fgRgb, bgRgb] = [bg ?? 'bg', fg ?? 'fg', bgRgb, fgRgb]; }
    if (fg !== null && fg !== undefined) cls.push(`f${fg}`);
    if (bg !== null && bg !== undefined) cls.push(`b${bg}`);
    if (this.bold) cls.push('bold');
    if (this.dim) cls.push('dim');
    if (this.italic) cls.push('italic');
    if (this.underline) cls.push('uline');
    s.className = cls.join(' ');
    if (fgRgb) s.style.color = fgRgb;
    if (bgRgb) s.style.backgroundColor = bgRgb;
    s.textContent = text;
    return s;
  }
}

/** Appends one line's text (no newline) to `el` in `style`, which it changes. */
function renderLine(el, text, style) {
  // A carriage return not ending the line: what follows overwrote the line.
  const cr = text.lastIndexOf('\r', text.length - 2);
  if (cr >= 0) {
    // The style the overwritten part set still holds.
    const gone = text.slice(0, cr);
    for (const m of gone.matchAll(ESC)) if (m[2] === 'm') style.apply(m[1]);
    text = text.slice(cr + 1);
  }
  text = text.replace(/\r$/, '');
  let at = 0;
  for (const m of text.matchAll(ESC)) {
    if (m.index > at) el.append(style.span(text.slice(at, m.index)));
    if (m[2] === 'm') style.apply(m[1]);
    at = m.index + m[0].length;
  }
  if (at < text.length) el.append(style.span(text.slice(at)));
}

/** Removes escape sequences: the text a model or a search sees. */
export function stripAnsi(s) {
  return s.replace(ESC, '');
}

/**
 * A log view fed by chunks: complete lines become `div.line`s in `container`, the
 * last incomplete one is shown and redrawn as it grows. At most `maxLines` stay:
 * the oldest are dropped from view (the log itself is untouched).
 */
export class LogView {
  constructor(container, maxLines = 20000) {
    this.el = container;
    this.maxLines = maxLines;
    this.style = new Style();
    this.pending = '';
    this.pendingStyle = this.style.clone();
    this.pendingEl = null;
    this.dropped = 0;
    this.lines = 0;
  }

  clear() {
    this.el.replaceChildren();
    this.style = new Style();
    this.pending = '';
    this.pendingEl = null;
    this.dropped = 0;
    this.lines = 0;
  }

  /** Appends a chunk of the log. */
  push(text) {
    if (!text) return;
    text = this.pending + text;
    const parts = text.split('\n');
    this.pending = parts.pop();
    // Lines that would be dropped at once are not drawn: only their colours count.
    const skip = Math.max(0, parts.length - this.maxLines);
    if (skip > 0) {
      if (this.pendingEl) { this.pendingEl.remove(); this.pendingEl = null; this.style = this.pendingStyle; }
      for (let i = 0; i < skip; i++) {
        for (const m of parts[i].matchAll(ESC)) if (m[2] === 'm') this.style.apply(m[1]);
      }
      this.dropped += skip + this.el.childElementCount;
      this.lines += skip;
      this.el.replaceChildren();
    }
    const frag = document.createDocumentFragment();
    for (const line of skip > 0 ? parts.slice(skip) : parts) {
      const div = this.pendingEl || document.createElement('div');
      if (this.pendingEl) { div.replaceChildren(); this.style = this.pendingStyle; this.pendingEl = null; }
      div.className = 'line';
      renderLine(div, line, this.style);
      if (!div.parentNode) frag.append(div);
      this.lines++;
    }
    this.el.append(frag);
    if (this.pending) {
      this.pendingStyle = this.style.clone();
      if (!this.pendingEl) {
        this.pendingEl = document.createElement('div');
        this.pendingEl.className = 'line';
        this.el.append(this.pendingEl);
      }
      this.pendingEl.replaceChildren();
      renderLine(this.pendingEl, this.pending, this.pendingStyle.clone());
    }
    this.trim();
  }

  trim() {
    let extra = this.el.childElementCount - this.maxLines;
    while (extra-- > 0 && this.el.firstElementChild !== this.pendingEl) {
      this.el.firstElementChild.remove();
      this.dropped++;
    }
  }
}
