// The operator dashboard: the fleet grid, active sessions, alerts and a station page, kept
// current by the live event stream (/api/events, read with fetch so the key goes in a header).
"use strict";

const state = { key: null, stations: new Map(), sessions: new Map(), alerts: new Map(),
  station: null, lastEventId: null, costTimer: null };
const $ = (selector) => document.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== null && value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child ?? ""));
  return node;
}

async function api(method, path, body) {
  const options = { method, headers: { Authorization: `Bearer ${state.key}` } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  const text = await response.text();
  let data = text;
  try { data = text ? JSON.parse(text) : null; } catch (_) { /* not JSON */ }
  if (response.status === 401) showLogin();
  return { status: response.status, ok: response.ok, data };
}

// -- the key ---------------------------------------------------------------------------------

function takeKey() {
  const match = location.hash.match(/key=([^&]+)/);
  if (match) {
    localStorage.setItem("csms-key", decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.hash.replace(/&?key=[^&]+/, ""));
  }
  state.key = localStorage.getItem("csms-key");
}

function showLogin() {
  $("#login").hidden = false;
  $("#logout").hidden = true;
}

$("#login").addEventListener("submit", (event) => {
  event.preventDefault();
  localStorage.setItem("csms-key", $("#key-input").value.trim());
  location.reload();
});
$("#logout").addEventListener("click", () => { localStorage.removeItem("csms-key"); location.reload(); });

// -- rendering ---------------------------------------------------------------------------------

const kwh = (wh) => (wh === null || wh === undefined ? "" : `${(wh / 1000).toFixed(2)} kWh`);
const kw = (w) => (w === null || w === undefined ? "" : `${(w / 1000).toFixed(1)} kW`);
const cost = (c) => (c ? `${c.cost_incl_vat} ${c.currency}` : "");

function connectorChips(connectors) {
  return el("div", { class: "connectors" }, ...connectors.filter((c) => c.connector_id > 0).map((c) =>
    el("span", { class: "connector", "data-status": c.status, "data-connector": c.connector_id,
      title: `${c.connector_id}: ${c.status}${c.error_code && c.error_code !== "NoError" ? " " + c.error_code : ""}` },
      `${c.connector_id} ${c.status}`)));
}

function renderFleet() {
  const grid = $("#fleet");
  grid.replaceChildren(...[...state.stations.values()].map((s) =>
    el("div", { class: `station${s.online ? " online" : ""}`, "data-station": s.id,
      "data-online": s.online ? "true" : "false", onclick: () => { location.hash = `station=${encodeURIComponent(s.id)}`; } },
      el("div", { class: "name" }, s.id),
      el("div", { class: "meta" }, s.online ? `online ${s.ocpp_version || ""}` : "offline",
        s.firmware_version ? ` · fw ${s.firmware_version}` : ""),
      connectorChips(s.connectors || []))));
  const online = [...state.stations.values()].filter((s) => s.online).length;
  $("#summary").textContent = `${online}/${state.stations.size} online · ${state.sessions.size} charging`;
  if (state.station) renderStation();
}

function renderSessions() {
  $("#sessions tbody").replaceChildren(...[...state.sessions.values()].sort((a, b) => b.id - a.id).map((s) =>
    el("tr", { "data-session": s.id },
      el("td", {}, s.id), el("td", {}, `${s.station_id}/${s.connector_id}`), el("td", {}, s.id_tag),
      el("td", {}, kwh(s.energy_wh)), el("td", {}, kw(s.power_w)), el("td", {}, cost(s.live_cost)))));
  renderFleetSummaryOnly();
}

function renderFleetSummaryOnly() {
  const online = [...state.stations.values()].filter((s) => s.online).length;
  $("#summary").textContent = `${online}/${state.stations.size} online · ${state.sessions.size} charging`;
}

function renderAlerts() {
  const open = [...state.alerts.values()].filter((a) => a.state !== "cleared").sort((a, b) => b.id - a.id);
  $("#alerts").replaceChildren(...open.map((a) =>
    el("li", { class: `${a.severity} ${a.state}`, "data-alert": a.id },
      el("strong", {}, a.kind), " ", a.message, " ",
      a.state === "active" ? el("button", { onclick: () => alertAction(a.id, "ack") }, "Acknowledge") : "",
      el("button", { onclick: () => alertAction(a.id, "clear") }, "Clear"))));
}

async function alertAction(id, action) {
  const answer = await api("POST", `/api/alerts/${id}/${action}`);
  if (answer.ok) { state.alerts.set(id, answer.data); renderAlerts(); }
}

function logEvent(event) {
  const list = $("#events");
  list.prepend(el("li", { "data-kind": event.kind },
    `${event.at.slice(11, 19)} ${event.kind} ${event.station_id || ""} ${JSON.stringify(event.data)}`));
  while (list.children.length > 60) list.lastChild.remove();
}

// -- the station page --------------------------------------------------------------------------

async function renderStation() {
  const id = state.station;
  const s = state.stations.get(id);
  $("#station-title").textContent = `Station ${id}`;
  if (!s) return;
  const facts = { online: s.online ? `yes (${s.ocpp_version})` : "no", vendor: s.vendor, model: s.model,
    serial: s.serial_number, firmware: `${s.firmware_version || "?"} ${s.firmware_status ? "(" + s.firmware_status + ")" : ""}`,
    "security profile": s.security_profile, "last heartbeat": s.last_heartbeat_at, "last boot": s.last_boot_at,
    registered: s.registered ? "yes" : "no" };
  $("#station-facts").replaceChildren(...Object.entries(facts).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v ?? "")]));
  $("#station-connectors").replaceChildren(connectorChips(s.connectors || []));
}

async function loadStationDetails() {
  const id = state.station;
  const [sessions, config, uploads, commands, model] = await Promise.all([
    api("GET", `/api/sessions?station=${encodeURIComponent(id)}&limit=20`),
    api("GET", `/api/stations/${encodeURIComponent(id)}/configuration`),
    api("GET", `/api/stations/${encodeURIComponent(id)}/uploads`),
    api("GET", "/api/commands"),
    api("GET", `/api/stations/${encodeURIComponent(id)}/device-model`),
  ]);
  if (model.ok) renderDeviceModel(model.data);
  if (sessions.ok) {
    $("#station-sessions tbody").replaceChildren(...sessions.data.items.map((x) => el("tr", { "data-session": x.id },
      el("td", {}, x.id), el("td", {}, x.connector_id), el("td", {}, x.id_tag), el("td", {}, x.started_at || ""),
      el("td", {}, x.ended_at || ""), el("td", {}, kwh(x.energy_wh)), el("td", {}, x.status),
      el("td", {}, x.cost_incl_vat ? `${x.cost_incl_vat} ${x.currency}` : cost(x.live_cost)))));
  }
  if (config.ok) renderConfig(config.data);
  if (uploads.ok) {
    $("#station-uploads").replaceChildren(...uploads.data.map((u) => el("li", {}, `${u.uploaded_at} ${u.file_name} (${u.size} bytes)`)));
  }
  if (commands.ok) {
    const version = state.stations.get(id)?.ocpp_version || Object.keys(commands.data)[0];
    $("#custom-action").replaceChildren(...(commands.data[version] || []).map((a) => el("option", { value: a }, a)));
  }
}

function renderConfig(data) {
  const box = $("#station-config");
  if (!data.latest) { box.replaceChildren(el("p", {}, "No snapshot yet.")); return; }
  const wrong = new Map((data.diff || []).map((d) => [d.key, d]));
  const rows = (data.latest.configuration.configurationKey || []).map((k) =>
    el("tr", { class: wrong.has(k.key) ? "diff" : "" }, el("td", {}, k.key), el("td", {}, k.value ?? ""),
      el("td", {}, wrong.has(k.key) ? `desired: ${wrong.get(k.key).desired}` : "")));
  for (const d of data.diff || []) if (d.problem === "missing") rows.push(el("tr", { class: "diff" }, el("td", {}, d.key), el("td", {}, "(missing)"), el("td", {}, `desired: ${d.desired}`)));
  box.replaceChildren(el("p", {}, `Snapshot of ${data.latest.taken_at}`),
    el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "key"), el("th", {}, "value"), el("th", {}, ""))), el("tbody", {}, ...rows)));
}

// The 2.x device model, one row per variable attribute (a 1.6 station has none).
function renderDeviceModel(rows) {
  const box = $("#station-device-model");
  if (!rows.length) { box.replaceChildren(el("p", {}, "No device model reported (2.x stations: Refresh device model).")); return; }
  const named = (name, instance) => (instance ? `${name} (${instance})` : name);
  box.replaceChildren(el("table", {},
    el("thead", {}, el("tr", {}, ...["component", "evse/connector", "variable", "type", "value", "mutability", "unit", "updated"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...rows.map((r) => el("tr", {},
      el("td", {}, named(r.component, r.component_instance)),
      el("td", {}, r.evse_id ? `${r.evse_id}${r.connector_id ? "/" + r.connector_id : ""}` : ""),
      el("td", {}, named(r.variable, r.variable_instance)), el("td", {}, r.attribute_type), el("td", {}, r.value ?? ""),
      el("td", {}, r.mutability ?? ""), el("td", {}, r.unit ?? ""), el("td", {}, r.updated_at))))));
}

async function loadDeviceModel() {
  const answer = await api("GET", `/api/stations/${encodeURIComponent(state.station)}/device-model`);
  if (answer.ok) renderDeviceModel(answer.data);
}

async function runCommand(action, payload) {
  const id = encodeURIComponent(state.station);
  const out = $("#command-result");
  out.textContent = `${action} …`;
  const answer = await api("POST", `/api/stations/${id}/commands/${action}`, payload);
  out.textContent = `${action} → HTTP ${answer.status}\n${JSON.stringify(answer.ok ? answer.data.response : answer.data, null, 2)}`;
  out.dataset.status = String(answer.status);
}

async function runAction(kind) {
  const id = encodeURIComponent(state.station);
  const out = $("#command-result");
  const path = { snapshot: `/api/stations/${id}/configuration/snapshot`, diagnostics: `/api/stations/${id}/diagnostics`,
    "local-list": `/api/stations/${id}/local-list`, "device-model": `/api/stations/${id}/device-model/refresh` }[kind];
  out.textContent = `${kind} …`;
  const answer = await api("POST", path, kind === "snapshot" || kind === "device-model" ? undefined : {});
  out.textContent = `${kind} → HTTP ${answer.status}\n${JSON.stringify(answer.data, null, 2)}`;
  out.dataset.status = String(answer.status);
  if (kind === "snapshot" && answer.ok) renderConfig(answer.data);
  // The station reports through NotifyReport after it answered: look again a little later.
  if (kind === "device-model" && answer.ok) for (const ms of [1000, 3000]) setTimeout(loadDeviceModel, ms);
}

$("#commands").addEventListener("click", (event) => {
  const button = event.target.closest("button");
  if (!button) return;
  if (button.dataset.command) runCommand(button.dataset.command, JSON.parse(button.dataset.payload));
  else if (button.dataset.action) runAction(button.dataset.action);
});
$("#custom-command").addEventListener("submit", (event) => {
  event.preventDefault();
  let payload;
  try { payload = JSON.parse($("#custom-payload").value); } catch (error) { $("#command-result").textContent = `not JSON: ${error}`; return; }
  runCommand($("#custom-action").value, payload);
});

function route() {
  const match = location.hash.match(/station=([^&]+)/);
  state.station = match ? decodeURIComponent(match[1]) : null;
  $("#station-view").hidden = !state.station;
  $("#fleet-view").hidden = !!state.station;
  if (state.station) { renderStation(); loadStationDetails(); }
}
window.addEventListener("hashchange", route);

// -- data: initial load, then live events --------------------------------------------------------

async function loadAll() {
  const [stations, sessions, alerts] = await Promise.all([
    api("GET", "/api/stations"), api("GET", "/api/sessions?status=Active&limit=500"), api("GET", "/api/alerts?state=open"),
  ]);
  if (!stations.ok) return false;
  state.stations = new Map(stations.data.map((s) => [s.id, s]));
  state.sessions = new Map(sessions.ok ? sessions.data.items.map((s) => [s.id, s]) : []);
  state.alerts = new Map(alerts.ok ? alerts.data.map((a) => [a.id, a]) : []);
  renderFleet(); renderSessions(); renderAlerts();
  return true;
}

function refreshCostsSoon() {
  if (state.costTimer) return;
  state.costTimer = setTimeout(async () => {
    state.costTimer = null;
    const sessions = await api("GET", "/api/sessions?status=Active&limit=500");
    if (!sessions.ok) return;
    for (const s of sessions.data.items) {
      const known = state.sessions.get(s.id);
      state.sessions.set(s.id, { ...s, power_w: known?.power_w });
    }
    renderSessions();
  }, 3000);
}

function station(id) {
  if (!state.stations.has(id)) state.stations.set(id, { id, connectors: [], online: false });
  return state.stations.get(id);
}

const refreshing = new Set();
async function refreshStation(id) {
  // A connection or boot changes much of what a station shows: read it whole, once.
  if (refreshing.has(id)) return;
  refreshing.add(id);
  setTimeout(async () => {
    refreshing.delete(id);
    const answer = await api("GET", `/api/stations/${encodeURIComponent(id)}`);
    if (answer.ok) { state.stations.set(id, answer.data); renderFleet(); }
  }, 300);
}

function apply(event) {
  const d = event.data;
  const s = event.station_id ? station(event.station_id) : null;
  switch (event.kind) {
    case "connection":
      s.online = d.state === "connected";
      if (d.subprotocol) s.ocpp_version = d.subprotocol;
      renderFleet(); refreshStation(s.id); break;
    case "boot":
      Object.assign(s, { vendor: d.vendor, model: d.model, firmware_version: d.firmware_version, last_boot_at: event.at });
      renderFleet(); refreshStation(s.id); break;
    case "heartbeat":
      s.last_heartbeat_at = event.at; if (state.station === s.id) renderStation(); break;
    case "status": {
      const others = (s.connectors || []).filter((c) => c.connector_id !== d.connector_id);
      s.connectors = [...others, { connector_id: d.connector_id, status: d.status, error_code: d.error_code }]
        .sort((a, b) => a.connector_id - b.connector_id);
      renderFleet(); break;
    }
    case "firmware": s.firmware_status = d.status; renderFleet(); break;
    case "session_started":
      if (d.status === "Accepted") {
        state.sessions.set(d.transaction_id, { id: d.transaction_id, station_id: event.station_id,
          connector_id: d.connector_id, id_tag: d.id_tag, energy_wh: 0, started_at: d.started_at, meter_start_wh: d.meter_start_wh });
        renderSessions(); refreshCostsSoon();
        if (state.station === event.station_id) loadStationDetails();
      }
      break;
    case "meter": {
      const x = state.sessions.get(d.transaction_id);
      if (x) {
        if (d.energy_wh !== undefined && x.meter_start_wh !== undefined) {
          const energy = d.energy_wh - x.meter_start_wh;
          if (d.power_w === undefined && x.last_wh !== undefined && x.last_at) {
            const hours = (Date.parse(d.timestamp) - Date.parse(x.last_at)) / 3.6e6;
            if (hours > 0) x.power_w = (d.energy_wh - x.last_wh) / hours;
          }
          x.energy_wh = energy; x.last_wh = d.energy_wh; x.last_at = d.timestamp;
        }
        if (d.power_w !== undefined) x.power_w = d.power_w;
        renderSessions(); refreshCostsSoon();
      }
      break;
    }
    case "session_stopped":
      state.sessions.delete(d.transaction_id); renderSessions();
      if (state.station === event.station_id) loadStationDetails();
      break;
    case "alert": state.alerts.set(d.id, d); renderAlerts(); break;
    case "diagnostics": if (state.station === event.station_id && d.upload_id) loadStationDetails(); break;
    default: break;
  }
}

async function stream() {
  for (;;) {
    const headers = { Authorization: `Bearer ${state.key}` };
    if (state.lastEventId !== null) headers["Last-Event-ID"] = String(state.lastEventId);
    try {
      const response = await fetch("/api/events", { headers });
      if (response.status === 401) { showLogin(); return; }
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      $("#stream-state").textContent = "live"; $("#stream-state").className = "pill on";
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end); buffer = buffer.slice(end + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
          const kind = (block.split("\n").find((l) => l.startsWith("event: ")) || "").slice(7);
          if (!data) continue;
          if (kind === "lagged") { await loadAll(); continue; }
          const event = JSON.parse(data);
          state.lastEventId = event.id;
          apply(event); logEvent(event);
        }
      }
    } catch (error) {
      console.warn("event stream:", error);
    }
    $("#stream-state").textContent = "reconnecting"; $("#stream-state").className = "pill off";
    await new Promise((resolve) => setTimeout(resolve, 2000));
    await loadAll();
  }
}

async function main() {
  takeKey();
  if (!state.key) { showLogin(); return; }
  $("#logout").hidden = false;
  if (await loadAll()) { route(); stream(); }
}
main();
