/** A tiny element builder for the views (plain DOM inside Lumino widgets: no framework). */

type Child = Node | string | null | undefined | false;

export interface Attrs {
  class?: string;
  title?: string;
  [name: string]: string | number | boolean | undefined | EventListener;
}

/** `<tag attrs>children</tag>`; `on*` attributes that are functions become listeners. */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === false) {
      continue;
    }
    if (typeof value === 'function') {
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === 'class') {
      el.className = String(value);
    } else if (value === true) {
      el.setAttribute(name, '');
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el: HTMLElement, children: (Child | Child[])[]): void {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    el.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
  }
}

/** Replace the children of `el`. */
export function setChildren(el: HTMLElement, ...children: (Child | Child[])[]): void {
  el.replaceChildren();
  append(el, children);
}

/** A two-column key/value table. */
export function kvTable(rows: [string, Node | string][], cls = 'mltrack-kv'): HTMLTableElement {
  return h(
    'table',
    { class: cls },
    h('tbody', {}, rows.map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', {}, v))))
  );
}

/** An error box (hidden when `message` is empty). */
export function errorBox(message: string | null): HTMLElement {
  return h('div', { class: 'mltrack-error', role: 'alert', hidden: !message }, message ?? '');
}
