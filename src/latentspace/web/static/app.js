"use strict";
// The latentspace page: plain JS against the v1 API (no framework, no build step).

// Every element with an id, as els.camelCase ("search-text" -> els.searchText).
const camel = (id) => id.replace(/-(\w)/g, (_, c) => c.toUpperCase());
const els = Object.fromEntries([...document.querySelectorAll("[id]")].map((n) => [camel(n.id), n]));
const tabs = [els.tabResults, els.tabMap, els.tabClusters];

const STORE = { key: "latentspace.apiKey", collection: "latentspace.collection" };
const state = {
  key: localStorage.getItem(STORE.key) || "",
  collection: "",
  collections: new Map(),
  thumbs: new Map(), // "collection\nid" -> Promise<object URL | null>
  searchSeq: 0,
  dupSeq: 0,
  termCount: 0,
};

// -- helpers ---------------------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  node.append(...children);
  return node;
}

function showError(err) {
  els.error.textContent = err instanceof Error ? err.message : String(err);
  els.error.hidden = false;
}

const clearError = () => { els.error.hidden = true; };

function bump(node) {
  node.dataset.generation = String(Number(node.dataset.generation || 0) + 1);
}

function resultCount() {
  const k = Math.round(Number(els.k.value));
  return Number.isFinite(k) ? Math.min(Math.max(k, 1), 200) : 12;
}

function formatScore(score) {
  const short = score.toFixed(3); // a near copy at 0.9999 should not read as 1.000
  return short === "1.000" && score < 0.99995 ? score.toFixed(4) : short;
}

// -- the API ---------------------------------------------------------------------------------
// Every request sends the API key when one is set; errors are problem+json: show `detail`.
async function api(path, { method = "GET", json, form } = {}) {
  const headers = state.key ? { Authorization: `Bearer ${state.key}` } : {};
  if (json !== undefined) headers["Content-Type"] = "application/json";
  const body = json !== undefined ? JSON.stringify(json) : form;
  const response = await fetch(path, { method, headers, body });
  if (!response.ok) throw await problemOf(response);
  return response;
}

async function problemOf(response) {
  const problem = await response.json().catch(() => ({})); // not JSON: the status line
  return new Error(problem.detail || problem.title || `${response.status} ${response.statusText}`);
}

const getJSON = async (path, options) => (await api(path, options)).json();
const inCollection = (suffix) => `/v1/collections/${encodeURIComponent(state.collection)}${suffix}`;

// -- thumbnails: fetched with the key (an <img src> cannot send one), cached as object URLs ----
function clearThumbs() {
  for (const pending of state.thumbs.values()) {
    pending.then((url) => url && URL.revokeObjectURL(url));
  }
  state.thumbs.clear();
}

function thumbURL(id) {
  const cacheKey = `${state.collection}\n${id}`;
  if (!state.thumbs.has(cacheKey)) {
    const pending = api(inCollection(`/items/${encodeURIComponent(id)}/image`))
      .then(async (response) => URL.createObjectURL(await response.blob()))
      .catch(() => null); // a text item, or gone: the caller shows the id instead
    state.thumbs.set(cacheKey, pending);
  }
  return state.thumbs.get(cacheKey);
}

function thumb(id) {
  const img = el("img", { alt: `item ${id}`, width: 96, height: 96, class: "thumb" });
  thumbURL(id).then((url) => {
    if (url) img.src = url;
    else img.replaceWith(el("span", { class: "thumb placeholder", title: `${id}: no image` }, id));
  });
  return img;
}

// -- collections -----------------------------------------------------------------------------
async function loadCollections() {
  clearError();
  let collections = [];
  try {
    ({ collections } = await getJSON("/v1/collections"));
  } catch (err) {
    showError(err);
  }
  state.collections = new Map(collections.map((c) => [c.name, c]));
  const options = collections.map((c) => el("option", { value: c.name }, c.name));
  els.collection.replaceChildren(...options);
  if (!collections.length) els.collection.append(el("option", { value: "" }, "no collections"));
  els.collection.disabled = !collections.length;
  const saved = state.collection || localStorage.getItem(STORE.collection);
  setCollection(state.collections.has(saved) ? saved : collections[0]?.name ?? "");
  document.body.dataset.ready = "true";
}

function setCollection(name) {
  if (name !== state.collection) {
    clearThumbs();
    els.results.replaceChildren();
    els.clusters.replaceChildren();
    els.dupPanel.hidden = true;
    els.status.textContent = "Search with words, an image, or a sum of terms.";
  }
  state.collection = name;
  els.collection.value = name;
  if (name) localStorage.setItem(STORE.collection, name);
  const c = state.collections.get(name);
  els.collectionInfo.textContent = c
    ? `${c.count} items · ${c.model ?? "raw vectors"} · ${c.dim}-d · ${c.index.kind} index`
    : "";
  document.dispatchEvent(new CustomEvent("latentspace:collection", { detail: name }));
}

// -- searching -------------------------------------------------------------------------------
async function runSearch(label, request) {
  clearError();
  showView("results");
  if (!state.collection) return showError("Pick a collection first.");
  const seq = ++state.searchSeq;
  els.results.setAttribute("aria-busy", "true");
  els.status.textContent = `Searching for ${label}…`;
  try {
    const body = await request();
    if (seq !== state.searchSeq) return; // a newer search took over
    els.results.replaceChildren(...body.results.map(card));
    const ids = body.results.map((hit) => hit.id);
    document.dispatchEvent(new CustomEvent("latentspace:results", { detail: ids }));
    const n = body.results.length;
    els.status.textContent = n
      ? `${n} result${n === 1 ? "" : "s"} for ${label} · ${body.took_ms.toFixed(1)} ms`
      : `Nothing found for ${label}.`;
  } catch (err) {
    if (seq !== state.searchSeq) return;
    els.results.replaceChildren(); // no stale results under an error
    showError(err);
    els.status.textContent = `The search for ${label} failed.`;
  } finally {
    if (seq === state.searchSeq) {
      els.results.setAttribute("aria-busy", "false");
      bump(els.results);
    }
  }
}

function search(query, label) {
  const json = { query, k: resultCount(), include: ["metadata", "text", "uri"] };
  const lasso = window.latentspaceMap?.selection; // items lassoed on the map (map.js)
  if (lasso?.length) json.ids = lasso;
  return runSearch(label, () => getJSON(inCollection("/search"), { method: "POST", json }));
}

// The card's one line of metadata: short fields only (a file's name and path are in the
// id already, and in the tooltip).
function describeMetadata(metadata) {
  return Object.entries(metadata || {})
    .filter(([key, value]) => !["filename", "path"].includes(key) && typeof value !== "object")
    .slice(0, 4)
    .map(([key, value]) => `${key}: ${value}`)
    .join(" · ");
}

const tooltip = (metadata) => Object.entries(metadata || {})
  .map(([key, value]) => `${key}: ${typeof value === "object" ? JSON.stringify(value) : value}`)
  .join("\n");

function card(hit) {
  // A text item (a RAG chunk) shows its text instead of a picture.
  const visual = hit.text != null
    ? el("blockquote", { class: "thumb text" }, hit.text)
    : thumb(hit.id);
  const button = (action, label, caption, attrs) => el("button",
    { type: "button", "data-action": action, "data-id": hit.id, "aria-label": label, ...attrs },
    caption);
  return el("li", { class: "card", "data-testid": "result", "data-id": hit.id },
    visual,
    el("p", { class: "card-title" },
      el("span", { class: "id", title: hit.id }, hit.id),
      el("span", { class: "score", title: "cosine similarity" }, formatScore(hit.score))),
    el("p", { class: "meta", title: tooltip(hit.metadata) || undefined },
      describeMetadata(hit.metadata)),
    el("div", { class: "actions" },
      button("more", `More like ${hit.id}`, "More like this", { "data-testid": "more-like-this" }),
      button("use", `Use ${hit.id} in the query builder`, "+ query",
        { class: "secondary", "data-testid": "use-in-query" })));
}

// -- an image: search with it, and check whether it is already stored ------------------------
function readAsDataURL(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// The server names a lone query image "the query image: …"; here the file has a name.
const aboutFile = (file, err) =>
  new Error(`“${file.name}”: ${err.message.replace(/^the query image:?\s*/i, "")}`);

function searchWithImage(file) {
  if (!file) return;
  if (els.preview.src) URL.revokeObjectURL(els.preview.src);
  els.preview.hidden = true; // shown once the browser could draw it: never a broken picture
  els.preview.onload = () => { els.preview.hidden = false; };
  els.preview.onerror = () => { els.preview.hidden = true; };
  els.preview.src = URL.createObjectURL(file);
  els.preview.alt = `query image ${file.name}`;
  const form = new FormData();
  form.append("file", file);
  form.append("k", String(resultCount()));
  runSearch(`the image “${file.name}”`, () =>
    getJSON(inCollection("/search/image"), { method: "POST", form })
      .catch((err) => { throw aboutFile(file, err); }));
  checkDuplicates(file);
}

// -- the query builder: rows of [kind, value, weight] ----------------------------------------
const part = (row, role) => row.querySelector(`[data-role="${role}"]`);

function addTerm({ kind = "text", value = "", weight = 1 } = {}) {
  const row = els.termRow.content.firstElementChild.cloneNode(true);
  const n = ++state.termCount;
  for (const label of row.querySelectorAll("label[data-for]")) {
    const input = part(row, label.dataset.for);
    input.id = `term-${n}-${label.dataset.for}`;
    label.htmlFor = input.id;
  }
  part(row, "kind").value = kind;
  part(row, "value").value = value;
  part(row, "weight").value = String(weight);
  part(row, "remove").setAttribute("aria-label", "Remove this term");
  syncRow(row);
  els.terms.append(row);
  return row;
}

function syncRow(row) {
  const negative = Number(part(row, "weight").value) < 0;
  row.classList.toggle("negative", negative);
  row.querySelector(".sign").textContent = negative ? "−" : "+";
  const kind = part(row, "kind").value;
  part(row, "value").placeholder = kind === "item" ? "item id" : "blue";
}

function useInQuery(id) {
  const row = [...els.terms.children].find((r) => !part(r, "value").value.trim()) || addTerm();
  part(row, "kind").value = "item";
  part(row, "value").value = id;
  syncRow(row);
  part(row, "weight").focus();
}

function runTerms(event) {
  event.preventDefault();
  const terms = [...els.terms.children]
    .map((row) => ({
      kind: part(row, "kind").value,
      value: part(row, "value").value.trim(),
      weight: Number(part(row, "weight").value),
    }))
    .filter((t) => t.value);
  if (!terms.length) return showError("Give at least one term a value.");
  if (terms.some((t) => !Number.isFinite(t.weight))) return showError("A weight is not a number.");
  const label = terms
    .map((t, i) => {
      const sign = t.weight < 0 ? "−" : i ? "+" : "";
      const size = Math.abs(t.weight) === 1 ? "" : `${Math.abs(t.weight)}·`;
      return `${sign} ${size}${t.kind === "item" ? `item ${t.value}` : `“${t.value}”`}`.trim();
    })
    .join(" ");
  search({ terms: terms.map((t) => ({ [t.kind]: t.value, weight: t.weight })) }, label);
}

// -- tabs ------------------------------------------------------------------------------------
function showView(name) {
  for (const tab of tabs) {
    const selected = tab.getAttribute("aria-controls") === `${name}-view`;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    document.getElementById(tab.getAttribute("aria-controls")).hidden = !selected;
  }
  document.dispatchEvent(new CustomEvent("latentspace:view", { detail: name }));
}

// -- wiring ----------------------------------------------------------------------------------
els.collection.addEventListener("change", () => setCollection(els.collection.value));

els.apiKey.value = state.key;
els.keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  state.key = els.apiKey.value.trim();
  if (state.key) localStorage.setItem(STORE.key, state.key);
  else localStorage.removeItem(STORE.key);
  clearThumbs();
  loadCollections();
});

els.searchForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = els.searchText.value.trim();
  if (text) search({ text }, `“${text}”`);
});

els.imageFile.addEventListener("change", () => {
  searchWithImage(els.imageFile.files[0]);
  els.imageFile.value = ""; // picking the same file again fires another change
});
els.dropzone.addEventListener("dragover", (event) => {
  event.preventDefault(); // allows the drop
  els.dropzone.classList.add("over");
});
els.dropzone.addEventListener("dragleave", () => els.dropzone.classList.remove("over"));
els.dropzone.addEventListener("drop", (event) => {
  event.preventDefault();
  els.dropzone.classList.remove("over");
  searchWithImage(event.dataTransfer.files[0]);
});

els.results.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const id = button.dataset.id;
  if (button.dataset.action === "more") search({ item: id }, `items like ${id}`);
  else useInQuery(id);
});

els.addTerm.addEventListener("click", () => part(addTerm(), "value").focus());
els.terms.addEventListener("input", (event) => syncRow(event.target.closest("li")));
els.terms.addEventListener("click", (event) => {
  if (!event.target.closest('[data-role="remove"]')) return;
  event.target.closest("li").remove();
  if (!els.terms.children.length) addTerm();
});
els.termsForm.addEventListener("submit", runTerms);
els.dupsForm.addEventListener("submit", findDuplicates);

for (const tab of tabs) {
  tab.addEventListener("click", () => showView(tab.getAttribute("aria-controls").slice(0, -5)));
  tab.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
    const step = event.key === "ArrowRight" ? 1 : tabs.length - 1;
    const other = tabs[(tabs.indexOf(tab) + step) % tabs.length];
    other.click();
    other.focus();
  });
}

addTerm();
loadCollections();
