// deepmf page: plain JavaScript over the service's JSON API (same origin, no libraries, no network beyond it).
"use strict";

const state = { info: null, ratings: new Map(), pending: 0 };

// ---- helpers -----------------------------------------------------------------------------------------------
async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `${response.status} ${response.statusText}`);
  return body;
}

// Build an element; text always goes through textContent, so titles and ids are never parsed as HTML.
function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "text") node.textContent = value;
    else if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

const $ = (id) => document.getElementById(id);

function debounce(fn, ms) {
  let timer;
  return (...args) => { clearTimeout(timer); timer = setTimeout(() => fn(...args), ms); };
}

function fraction(value, low, high) {
  return Math.max(0, Math.min(1, (value - low) / (high - low)));
}

function bar(share, cls = "") {
  return el("span", { class: "bar" }, [el("span", { class: cls, style: `width:${(100 * share).toFixed(1)}%` })]);
}

function ratingScore(value) {
  const { rating_min: low, rating_max: high } = state.info;
  return el("span", { class: "score" }, [bar(fraction(value, low, high)), el("span", { text: value.toFixed(2) })]);
}

function showError(node, error) {
  node.replaceChildren(el("li", { class: "error", text: String(error.message || error) }));
}

// A search box with a suggestion list: ``fetcher(text)`` gives rows, ``label(row)`` their text, ``pick(row)``.
function autocomplete(input, list, fetcher, label, pick) {
  let rows = [];
  let focused = -1;
  const close = () => { list.hidden = true; focused = -1; };
  const choose = (row) => { close(); input.value = label(row).main; pick(row); };
  const render = () => {
    list.replaceChildren(...rows.map((row, index) => {
      const text = label(row);
      return el("li", { class: index === focused ? "focused" : "", onmousedown: (event) => {
        event.preventDefault(); choose(row);
      } }, [el("span", { class: "title", text: text.main }), el("span", { class: "meta", text: text.meta })]);
    }));
    list.hidden = rows.length === 0;
  };
  const update = debounce(async () => {
    try { rows = await fetcher(input.value.trim()); } catch (error) { rows = []; }
    focused = -1;
    render();
  }, 150);
  input.addEventListener("input", update);
  input.addEventListener("focus", update);
  input.addEventListener("blur", close);
  input.addEventListener("keydown", (event) => {
    if (list.hidden && event.key !== "Enter") return;
    if (event.key === "ArrowDown") { focused = Math.min(rows.length - 1, focused + 1); render(); event.preventDefault(); }
    else if (event.key === "ArrowUp") { focused = Math.max(0, focused - 1); render(); event.preventDefault(); }
    else if (event.key === "Enter" && rows.length) { choose(rows[Math.max(0, focused)]); event.preventDefault(); }
    else if (event.key === "Escape") close();
  });
}

// ---- mode switching ----------------------------------------------------------------------------------------
function showMode(mode) {
  for (const tab of document.querySelectorAll(".tab")) {
    const active = tab.dataset.mode === mode;
    tab.classList.toggle("active", active);
    tab.setAttribute("aria-selected", String(active));
  }
  for (const section of document.querySelectorAll(".mode")) {
    const active = section.id === `mode-${mode}`;
    section.classList.toggle("active", active);
    section.hidden = !active;
  }
  if (mode === "newuser" && !$("new-candidates").children.length) searchToRate("");
}

// ---- users -------------------------------------------------------------------------------------------------
let currentUser = null;

async function showUser(user) {
  currentUser = user;
  const n = $("user-n").value;
  const min = $("user-min").value;
  $("user-hint").hidden = true;
  $("user-result").hidden = false;
  $("user-recs-title").textContent = `Recommended for user ${user}`;
  $("user-rated-title").textContent = `Rated by user ${user}`;
  const path = encodeURIComponent(user);
  try {
    const [recs, rated] = await Promise.all([
      api(`/users/${path}/recommendations?n=${n}&min_ratings=${min}`),
      api(`/users/${path}/ratings`),
    ]);
    if (user !== currentUser) return;  // a later pick won the race
    $("user-recs").replaceChildren(...recs.items.map((row) => el("li", { "data-item": row.item }, [
      el("span", { class: "title", text: row.title || `item ${row.item}`, title: row.title }), ratingScore(row.score),
    ])));
    $("user-rated-title").textContent = `Rated by user ${user} (${rated.items.length})`;
    const { rating_min: low, rating_max: high } = state.info;
    $("user-rated").replaceChildren(...rated.items.map((row) => el("li", { "data-item": row.item }, [
      el("span", { class: "title", text: row.title || `item ${row.item}`, title: row.title }),
      el("span", { class: "pair" }, [
        el("span", { class: "row" }, [bar(fraction(row.rating, low, high), "rating"), el("span", { text: row.rating.toFixed(1) })]),
        el("span", { class: "row" }, [bar(fraction(row.prediction, low, high), "prediction"), el("span", { text: row.prediction.toFixed(2) })]),
      ]),
    ])));
  } catch (error) {
    showError($("user-recs"), error);
    $("user-rated").replaceChildren();
  }
}

// ---- movies ------------------------------------------------------------------------------------------------
let currentMovie = null;

async function showSimilar(row) {
  currentMovie = row;
  $("movie-hint").hidden = true;
  $("movie-result").hidden = false;
  $("similar-title").textContent = `Movies like ${row.title || `item ${row.item}`}`;
  try {
    const body = await api(`/items/${encodeURIComponent(row.item)}/similar?n=12&min_ratings=${$("movie-min").value}`);
    if (row !== currentMovie) return;
    $("similar-list").replaceChildren(...body.similar.map((match) => el("li", { "data-item": match.item }, [
      el("span", { class: "title", text: match.title || `item ${match.item}`, title: match.title }),
      el("span", { class: "score" }, [bar(Math.max(0, match.score)), el("span", { text: match.score.toFixed(3) })]),
    ])));
  } catch (error) {
    showError($("similar-list"), error);
  }
}

// ---- new user (fold-in) ------------------------------------------------------------------------------------
// An implicit-feedback model learns interactions, not stars: one "like" button sends the lowest rating that
// counted as an interaction in training (the model's positive threshold), else one event.
const implicitModel = () => state.info.feedback === "implicit";

function starValues() {
  if (implicitModel()) return [state.info.positive ?? 1];
  const { rating_min: low, rating_max: high } = state.info;
  const values = [];
  for (let v = Math.max(1, Math.ceil(low)); v <= Math.floor(high) && values.length < 10; v += 1) values.push(v);
  return values.length ? values : [low, high];
}

function stars(item, title) {
  const current = state.ratings.get(item)?.rating;
  return el("span", { class: "stars", role: "group", "aria-label": `Rate ${title}` }, starValues().map((value) =>
    el("button", {
      class: `star${current !== undefined && value <= current ? " on" : ""}`,
      type: "button",
      title: implicitModel() ? "like" : `${value}`,
      "data-value": value,
      onclick: () => rate(item, title, value),
    }, [implicitModel() ? "♥" : "★"])));
}

function candidateRow(row) {
  return el("li", { "data-item": row.item }, [
    el("span", { class: "title", text: row.title || `item ${row.item}`, title: row.title }), stars(row.item, row.title),
  ]);
}

let candidates = [];

async function searchToRate(text) {
  try {
    candidates = (await api(`/items?query=${encodeURIComponent(text)}&limit=10`)).items;
  } catch (error) {
    candidates = [];
  }
  renderCandidates();
}

function renderCandidates() {
  $("new-candidates").replaceChildren(...candidates.filter((row) => !state.ratings.has(row.item)).map(candidateRow));
}

function rate(item, title, value) {
  state.ratings.set(item, { title, rating: value });
  renderRated();
  renderCandidates();
  recommendForNewUser();
}

function renderRated() {
  const rows = [...state.ratings.entries()];
  $("new-rated-title").hidden = rows.length === 0;
  $("new-rated").replaceChildren(...rows.map(([item, { title }]) => el("li", { "data-item": item }, [
    el("span", { class: "title", text: title || `item ${item}`, title }),
    el("span", { class: "stars-wrap" }, [stars(item, title), el("button", {
      class: "remove", type: "button", title: "Remove", onclick: () => {
        state.ratings.delete(item); renderRated(); renderCandidates(); recommendForNewUser();
      },
    }, ["×"])]),
  ])));
}

const recommendForNewUser = debounce(async () => {
  const status = $("new-status");
  if (!state.ratings.size) {
    status.textContent = "Rate a movie to get recommendations.";
    $("new-recs").replaceChildren();
    return;
  }
  const ticket = ++state.pending;
  // On a real catalogue, leave out films almost nobody rated (explicit-rating models love them).
  const minRatings = state.info.n_trained_items >= 200 ? 20 : 0;
  const ratings = [...state.ratings.entries()].map(([item, { rating }]) => ({ item, rating }));
  status.textContent = "Updating…";
  try {
    const body = await api("/recommendations", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ ratings, n: 10, min_ratings: minRatings }),
    });
    if (ticket !== state.pending) return;
    const unknown = body.unknown_items.length ? ` · ignored unknown items: ${body.unknown_items.join(", ")}` : "";
    status.textContent = `From your ${ratings.length} rating${ratings.length === 1 ? "" : "s"}` +
      (minRatings ? `, among movies with at least ${minRatings} ratings` : "") + unknown;
    $("new-recs").replaceChildren(...body.items.map((row) => el("li", { "data-item": row.item }, [
      el("span", { class: "title", text: row.title || `item ${row.item}`, title: row.title }), ratingScore(row.score),
    ])));
  } catch (error) {
    if (ticket !== state.pending) return;
    status.textContent = "";
    showError($("new-recs"), error);
  }
}, 200);

// ---- start -------------------------------------------------------------------------------------------------
async function start() {
  state.info = await api("/model");
  const info = state.info;
  $("model-info").replaceChildren(
    "model ", el("b", { text: info.model }), ` · ${info.n_users.toLocaleString()} users × ` +
    `${info.n_items.toLocaleString()} items · ` +
    (info.feedback === "implicit" ? "implicit feedback" : `ratings ${info.rating_min}–${info.rating_max}`) +
    ` · deepmf ${info.version}`);
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showMode(tab.dataset.mode));
  autocomplete($("user-search"), $("user-suggestions"),
    async (text) => (await api(`/users?query=${encodeURIComponent(text)}&limit=10`)).users,
    (row) => ({ main: String(row.user), meta: `${row.n_ratings} ratings` }), (row) => showUser(row.user));
  autocomplete($("movie-search"), $("movie-suggestions"),
    async (text) => (await api(`/items?query=${encodeURIComponent(text)}&limit=10`)).items,
    (row) => ({ main: row.title || `item ${row.item}`, meta: `${row.n_ratings} ratings` }), showSimilar);
  $("user-n").addEventListener("change", () => currentUser !== null && showUser(currentUser));
  $("user-min").addEventListener("change", () => currentUser !== null && showUser(currentUser));
  $("movie-min").addEventListener("change", () => currentMovie && showSimilar(currentMovie));
  $("new-search").addEventListener("input", debounce((event) => searchToRate(event.target.value.trim()), 150));
  document.body.dataset.ready = "true";
}

start().catch((error) => {
  $("model-info").textContent = `cannot reach the service: ${error.message}`;
});
