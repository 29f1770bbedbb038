// DataGrid front-end: an anywidget ES module (no build step). Python owns the data; this file
// draws the table and reports clicks back through the model (sort_key/sort_desc, selected,
// clicked). The DOM classes below are a contract the browser tests rely on.

function formatValue(value) {
  if (value === null || value === undefined) return { text: "", title: "" };
  if (typeof value === "number") {
    const full = String(value);
    if (Number.isInteger(value)) return { text: full, title: full };
    const abs = Math.abs(value);
    let text;
    if (abs !== 0 && (abs < 1e-4 || abs >= 1e15)) {
      text = value.toExponential(5).replace(/\.?0+e/, "e");
    } else {
      text = String(parseFloat(value.toPrecision(6)));
    }
    return { text, title: full };
  }
  const text = String(value);
  return { text, title: text.length > 60 ? text : "" };
}

function rank(value) {
  return typeof value === "number" ? [0, value, ""] : [1, 0, String(value).toLowerCase()];
}

function compareValues(a, b) {
  const ra = rank(a);
  const rb = rank(b);
  for (let i = 0; i < 3; i++) {
    if (ra[i] < rb[i]) return -1;
    if (ra[i] > rb[i]) return 1;
  }
  return 0;
}

function displayRows(model) {
  const rows = model.get("rows") || [];
  const key = model.get("sort_key");
  if (!model.get("sort_local") || !key) return rows;
  const desc = model.get("sort_desc");
  const present = rows.filter((r) => r.cells[key] !== null && r.cells[key] !== undefined);
  const missing = rows.filter((r) => r.cells[key] === null || r.cells[key] === undefined);
  present.sort((a, b) => (desc ? -1 : 1) * compareValues(a.cells[key], b.cells[key]));
  return present.concat(missing);
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function render({ model, el: root }) {
  const wrap = el("div", "mltrack-grid-wrap");
  root.classList.add("mltrack-grid-root");
  root.appendChild(wrap);

  function setSelected(ids) {
    model.set("selected", ids);
    model.save_changes();
  }

  function toggle(id) {
    const mode = model.get("selection_mode");
    const current = model.get("selected") || [];
    if (mode === "none") return;
    if (mode === "single") {
      setSelected(current.length === 1 && current[0] === id ? [] : [id]);
      return;
    }
    setSelected(current.includes(id) ? current.filter((x) => x !== id) : current.concat([id]));
  }

  function sortBy(key) {
    const desc = key === model.get("sort_key") ? !model.get("sort_desc") : true;
    model.set("sort_key", key);
    model.set("sort_desc", desc);
    model.save_changes();
  }

  function click(rowId, column) {
    const n = ((model.get("clicked") || {}).n || 0) + 1;
    model.set("clicked", { row: rowId, column: column, n: n });
    model.save_changes();
  }

  function draw() {
    const columns = model.get("columns") || [];
    const rows = displayRows(model);
    const mode = model.get("selection_mode");
    const selected = new Set(model.get("selected") || []);
    const sortKey = model.get("sort_key");
    const sortDesc = model.get("sort_desc");
    const scroll = wrap.scrollTop;
    wrap.replaceChildren();

    const table = el("table", "mltrack-grid");
    const head = el("thead");
    const headRow = el("tr");
    if (mode !== "none") {
      const th = el("th", "mltrack-grid-select-col");
      if (mode === "multi" && rows.length > 0) {
        const all = el("input", "mltrack-grid-select-all");
        all.type = "checkbox";
        all.title = "Select all rows";
        const nSel = rows.filter((r) => selected.has(r.id)).length;
        all.checked = nSel === rows.length;
        all.indeterminate = nSel > 0 && nSel < rows.length;
        all.addEventListener("change", () => setSelected(all.checked ? rows.map((r) => r.id) : []));
        th.appendChild(all);
      }
      headRow.appendChild(th);
    }
    for (const col of columns) {
      const th = el("th", "", col.label);
      th.dataset.key = col.key;
      if (col.title) th.title = col.title;
      if (col.align) th.classList.add("align-" + col.align);
      if (col.sortable) {
        th.classList.add("sortable");
        if (col.key === sortKey) th.classList.add(sortDesc ? "sorted-desc" : "sorted-asc");
        th.addEventListener("click", () => sortBy(col.key));
      }
      headRow.appendChild(th);
    }
    head.appendChild(headRow);
    table.appendChild(head);

    const body = el("tbody");
    if (rows.length === 0) {
      const tr = el("tr", "mltrack-grid-empty");
      const td = el("td", "", model.get("empty_text"));
      td.colSpan = columns.length + (mode !== "none" ? 1 : 0) || 1;
      tr.appendChild(td);
      body.appendChild(tr);
    }
    for (const row of rows) {
      const tr = el("tr", "mltrack-grid-row");
      tr.dataset.id = row.id;
      if (selected.has(row.id)) tr.classList.add("selected");
      if (mode !== "none") {
        const td = el("td", "mltrack-grid-select-col");
        const box = el("input", "mltrack-grid-select");
        box.type = "checkbox";
        box.checked = selected.has(row.id);
        box.addEventListener("click", (event) => {
          event.stopPropagation();
          toggle(row.id);
        });
        td.appendChild(box);
        tr.appendChild(td);
        tr.addEventListener("click", (event) => {
          if (event.target.closest("a, input")) return;
          toggle(row.id);
        });
      }
      const links = new Set(row.links || []);
      for (const col of columns) {
        const value = row.cells[col.key];
        const { text, title } = formatValue(value);
        const td = el("td");
        const align = col.align || (typeof value === "number" ? "right" : "left");
        td.classList.add("align-" + align);
        const extra = (row.classes || {})[col.key];
        if (extra) for (const c of extra.split(/\s+/).filter(Boolean)) td.classList.add(c);
        if (title) td.title = title;
        if (links.has(col.key) && text !== "") {
          const a = el("a", "mltrack-grid-link", text);
          a.href = "#";
          a.addEventListener("click", (event) => {
            event.preventDefault();
            event.stopPropagation();
            click(row.id, col.key);
          });
          td.appendChild(a);
        } else {
          td.textContent = text;
        }
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    table.appendChild(body);
    wrap.appendChild(table);
    wrap.scrollTop = scroll;
  }

  const events = [
    "change:columns",
    "change:rows",
    "change:selected",
    "change:sort_key",
    "change:sort_desc",
    "change:sort_local",
    "change:selection_mode",
    "change:empty_text",
  ];
  for (const name of events) model.on(name, draw);
  draw();
  return () => {
    for (const name of events) model.off(name, draw);
  };
}

export default { render };
