// The review desk: the queue, one receipt with its fields boxed on the image, corrections and decisions.
// Every read and write is a call to the service's own /api endpoints with the session cookie; changes carry
// the session's CSRF token. Text from receipts and metadata is only ever set as textContent.
(function () {
  "use strict";

  var FIELDS = [
    ["monto", "Monto"], ["referencia", "Referencia"], ["telefono", "Teléfono"], ["cedula", "Cédula"],
    ["fecha", "Fecha"], ["banco_origen", "Banco origen"], ["banco_destino", "Banco destino"],
    ["concepto", "Concepto"], ["beneficiario", "Beneficiario"], ["cuenta_origen", "Cuenta origen"],
    ["cuenta_destino", "Cuenta destino"], ["tipo_transaccion", "Tipo"], ["hora_operacion", "Hora"],
    ["identificador_fiscal", "RIF"], ["comprobante", "Comprobante"], ["canal_pago", "Canal"]
  ];
  var LABEL = {};
  FIELDS.forEach(function (f) { LABEL[f[0]] = f[1]; });
  var REVIEW_NAMES = {pendiente: "Pendiente", aprobado: "Aprobado", rechazado: "Rechazado"};
  var REASONS = {misma_imagen: "la misma imagen", mismo_pago: "el mismo pago (referencia y monto)",
                 mismo_pago_sin_banco: "el mismo pago (sin banco en uno de los dos)"};
  var RECONCILIATION_NAMES = {conciliado: "Conciliado", ambiguo: "Ambiguo", no_encontrado: "No encontrado",
                              pendiente: "Pendiente"};
  var POLL_MS = 8000;
  var PAGE = 30;

  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");
  var $ = function (id) { return document.getElementById(id); };
  var state = {items: [], cursor: null, selected: null, upload: null, zoom: 0, topId: 0};

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "class") node.className = attrs[k]; else node.setAttribute(k, attrs[k]);
    });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function api(method, path, body) {
    var options = {method: method, credentials: "same-origin", headers: {"Accept": "application/json"}};
    if (method !== "GET") {
      options.headers["X-CSRF-Token"] = csrf;
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body || {});
    }
    return fetch(path, options).then(function (response) {
      if (response.status === 401) { window.location.href = "/review/login"; throw new Error("sesión vencida"); }
      return response.json().catch(function () { return {success: false, error: {message: "Respuesta ilegible"}}; })
        .then(function (data) { data.httpStatus = response.status; return data; });
    });
  }

  // --- filters and the queue ------------------------------------------------------------------
  function filterParams() {
    var form = $("filtros");
    var params = new URLSearchParams();
    params.set("estado", form.querySelector('input[name="estado"]:checked').value);
    ["q", "numerosorteo", "fechasorteo"].forEach(function (name) {
      var value = form.elements[name].value.trim();
      if (value) params.set(name, value);
    });
    return params;
  }

  function exportHref() {
    var params = filterParams();
    params.set("format", "csv");
    return "/api/review_queue?" + params.toString();
  }

  function describeItem(item) {
    var campos = item.campos || {};
    var who = (item.metadata && (item.metadata.nombre || item.metadata.idWhatsapp)) || item.original_name;
    return {
      title: (campos.monto ? "Bs " + campos.monto : "sin monto") + " · " + (campos.referencia || "sin referencia"),
      sub: [who, campos.banco_origen, item.metadata && item.metadata.numerosorteo ? "sorteo " + item.metadata.numerosorteo : null,
            (item.created_at || "").replace("T", " ").slice(0, 16)].filter(Boolean).join(" · ")
    };
  }

  function badges(item) {
    var list = [];
    if (item.status === "error") list.push(["error", "Error"]);
    else if (item.status !== "processed") list.push(["proceso", "En proceso"]);
    if (item.duplicado_de) list.push(["duplicado", "Duplicado"]);
    else if (item.posible_reutilizacion) list.push(["reuso", "Posible reúso"]);
    if (item.requiere_revision && item.revision === "pendiente") list.push(["revisar", "Revisar"]);
    if (item.revision && item.revision !== "pendiente") list.push([item.revision, REVIEW_NAMES[item.revision]]);
    return list;
  }

  function itemNode(item) {
    var text = describeItem(item);
    var li = el("li", {"class": "item", "data-id": item.id, "id": "item-" + item.id, "tabindex": "0"});
    li.appendChild(el("span", {"class": "item-titulo"}, text.title));
    li.appendChild(el("span", {"class": "item-sub"}, text.sub));
    var tags = el("span", {"class": "item-etiquetas"});
    badges(item).forEach(function (b) { tags.appendChild(el("span", {"class": "etiqueta " + b[0]}, b[1])); });
    li.appendChild(tags);
    if (state.selected === item.id) li.classList.add("activo");
    li.addEventListener("click", function () { openReceipt(item.id); });
    li.addEventListener("keydown", function (e) { if (e.key === "Enter") openReceipt(item.id); });
    return li;
  }

  function renderList() {
    var list = $("lista");
    list.textContent = "";
    state.items.forEach(function (item) { list.appendChild(itemNode(item)); });
    $("lista-vacia").hidden = state.items.length > 0;
    $("mas").hidden = !state.cursor;
    $("exportar").setAttribute("href", exportHref());
  }

  function loadQueue(append) {
    var params = filterParams();
    params.set("limit", PAGE);
    if (append && state.cursor) params.set("cursor", state.cursor);
    return api("GET", "/api/review_queue?" + params.toString()).then(function (data) {
      if (!data.success) { showNotice($("nuevos"), data.error.message, true); return; }
      state.items = append ? state.items.concat(data.items) : data.items;
      state.cursor = data.next_cursor;
      if (!append) state.topId = data.items.length ? data.items[0].id : state.topId;
      renderList();
    });
  }

  function loadCounts() {
    var params = filterParams();
    params.delete("estado");
    return api("GET", "/api/review_queue/counts?" + params.toString()).then(function (data) {
      if (!data.success) return;
      document.querySelectorAll(".conteo").forEach(function (node) {
        var value = data.counts[node.getAttribute("data-estado")];
        node.textContent = value === undefined ? "" : String(value);
      });
    });
  }

  // New uploads appear on their own, and the rows shown change as the worker and others act: the
  // newest rows are asked for again and replace what is shown of them; older loaded pages stay.
  function poll() {
    var params = filterParams();
    params.set("limit", Math.min(100, Math.max(PAGE, state.items.length)));
    api("GET", "/api/review_queue?" + params.toString()).then(function (data) {
      if (!data.success) return;
      var known = {};
      state.items.forEach(function (i) { known[i.id] = true; });
      var fresh = data.items.filter(function (i) { return !known[i.id] && i.id > state.topId; });
      var oldest = data.next_cursor && data.items.length ? data.items[data.items.length - 1].id : 0;
      var older = state.items.filter(function (i) { return i.id < oldest; });
      var before = JSON.stringify(state.items);
      state.items = data.items.concat(older);
      if (data.items.length) state.topId = Math.max(state.topId, data.items[0].id);
      if (!older.length) state.cursor = data.next_cursor;
      if (JSON.stringify(state.items) !== before) renderList();
      if (fresh.length) {
        showNotice($("nuevos"), fresh.length === 1 ? "1 comprobante nuevo" : fresh.length + " comprobantes nuevos", false);
      }
    }).catch(function () {});
    loadCounts().catch(function () {});
  }

  function showNotice(node, text, isError) {
    node.textContent = text;
    node.hidden = !text;
    node.classList.toggle("error", !!isError);
  }

  // --- one receipt ----------------------------------------------------------------------------
  function confidenceClass(value) {
    if (value === null || value === undefined) return "conf-ninguna";
    if (value >= 0.85) return "conf-alta";
    if (value >= 0.6) return "conf-media";
    return "conf-baja";
  }

  function highlight(field, on) {
    document.querySelectorAll('[data-campo="' + field + '"]').forEach(function (node) {
      node.classList.toggle("resaltado", on);
    });
  }

  function linkHover(node, field) {
    node.addEventListener("mouseenter", function () { highlight(field, true); });
    node.addEventListener("mouseleave", function () { highlight(field, false); });
  }

  function drawBoxes(upload) {
    var layer = $("cajas");
    layer.textContent = "";
    var image = $("imagen");
    var width = image.naturalWidth, height = image.naturalHeight;
    var detail = (upload.result && upload.result.campos_detalle) || {};
    if (!width || !height) return;
    FIELDS.forEach(function (f) {
      var d = detail[f[0]];
      var box = d && d.coordenadas;
      if (!box || box.length !== 4 || d.valor === null || d.valor === undefined) return;
      // In the image's own pixels: percentages keep the boxes on their words at any zoom.
      var node = el("div", {"class": "caja " + confidenceClass(d.confianza), "data-campo": f[0],
                            "title": f[1] + ": " + d.valor});
      node.style.left = (100 * box[0] / width) + "%";
      node.style.top = (100 * box[1] / height) + "%";
      node.style.width = (100 * (box[2] - box[0]) / width) + "%";
      node.style.height = (100 * (box[3] - box[1]) / height) + "%";
      node.appendChild(el("span", {"class": "caja-nombre"}, f[1]));
      linkHover(node, f[0]);
      node.addEventListener("click", function () { focusField(f[0]); });
      layer.appendChild(node);
    });
  }

  function applyZoom() {
    var image = $("imagen");
    var viewer = $("visor");
    if (!image.naturalWidth) return;
    var fit = Math.min(1, (viewer.clientWidth - 4) / image.naturalWidth);
    var scale = state.zoom > 0 ? state.zoom : fit;
    $("lienzo").style.width = Math.round(image.naturalWidth * scale) + "px";
    $("zoom-nivel").textContent = Math.round(scale * 100) + " %";
  }

  function zoomBy(factor) {
    var image = $("imagen");
    if (!image.naturalWidth) return;
    var current = $("lienzo").offsetWidth / image.naturalWidth;
    state.zoom = Math.max(0.1, Math.min(4, current * factor));
    applyZoom();
  }

  function fieldRow(name, upload) {
    var result = upload.result || {};
    var fields = result.extracted_fields || {};
    var detail = (result.campos_detalle || {})[name] || {};
    var value = fields[name];
    var row = el("tr", {"data-campo": name, "class": "campo " + (value === null || value === undefined ? "nulo" : "")});
    var label = el("th", {"scope": "row"});
    label.appendChild(el("label", {"for": "campo-" + name}, LABEL[name]));
    row.appendChild(label);
    var cell = el("td");
    var input = el("input", {"id": "campo-" + name, "name": name, "type": "text", "autocomplete": "off",
                             "placeholder": "—", "maxlength": "255", "aria-describedby": "error-" + name});
    input.value = value === null || value === undefined ? "" : String(value);
    input.setAttribute("data-original", input.value);
    input.disabled = upload.status !== "processed";
    input.addEventListener("keydown", function (e) {
      if (e.key === "Enter") { e.preventDefault(); saveField(name, input); }
      if (e.key === "Escape") { input.value = input.getAttribute("data-original"); setFieldError(name, ""); input.blur(); }
    });
    input.addEventListener("change", function () { saveField(name, input); });
    cell.appendChild(input);
    if (value === null || value === undefined) cell.appendChild(el("div", {"class": "motivo"}, detail.motivo || "no encontrado"));
    else if (detail.corregido || (result.campos_detalle && result.campos_detalle[name] && "valor_extraido" in detail))
      cell.appendChild(el("div", {"class": "motivo"}, "leído: " + (detail.valor_extraido === null ? "—" : detail.valor_extraido)));
    cell.appendChild(el("div", {"class": "error-campo", "id": "error-" + name, "role": "alert"}));
    row.appendChild(cell);
    var confidence = detail.confianza;
    var conf = detail.corregido ? el("td", {"class": "conf corregido", "title": "Corregido a mano"}, "a mano")
      : el("td", {"class": "conf " + confidenceClass(value === null ? null : confidence)},
           value === null || confidence === undefined || confidence === null ? "" : Math.round(confidence * 100) + "%");
    row.appendChild(conf);
    linkHover(row, name);
    return row;
  }

  function setFieldError(name, message) {
    var node = $("error-" + name);
    if (node) node.textContent = message || "";
    var input = $("campo-" + name);
    if (input) input.classList.toggle("invalido", !!message);
  }

  function saveField(name, input) {
    var value = input.value.trim();
    if (value === input.getAttribute("data-original")) { setFieldError(name, ""); return; }
    if (input.saving) return;  // Enter, then the blur's change event: one request
    input.saving = true;
    var body = {};
    body[name] = value === "" ? null : value;
    input.classList.add("guardando");
    api("PATCH", "/api/uploads/" + state.selected + "/fields", body).then(function (data) {
      input.classList.remove("guardando");
      input.saving = false;
      if (!data.success) {
        var details = data.error.details || {};
        var reasons = details.reasons || {};
        var named = Object.keys(reasons);
        named.forEach(function (f) { setFieldError(f, reasons[f]); });
        if (!named.length) setFieldError(details.field || name, data.error.message);
        return;
      }
      showReceipt(data.upload, {keepNote: true});
      var again = $("campo-" + name);
      if (again) { again.classList.add("guardado"); }
      refreshItem(data.upload);
    });
  }

  function focusField(name) {
    var input = $("campo-" + name);
    if (input && !input.disabled) { input.focus(); input.select(); }
  }

  function renderFlags(upload) {
    var flags = $("banderas");
    flags.textContent = "";
    var review = upload.review || {estado: "pendiente"};
    var tag = $("recibo-estado");
    tag.textContent = REVIEW_NAMES[review.estado] || review.estado;
    tag.className = "etiqueta " + review.estado;
    if (upload.status === "error" && upload.error) flags.appendChild(el("p", {"class": "aviso error"}, "Error: " + upload.error.message));
    if (upload.status !== "processed" && upload.status !== "error") flags.appendChild(el("p", {"class": "aviso"}, "Aún en proceso."));
    if (upload.requiere_revision) flags.appendChild(el("p", {"class": "aviso"}, "El servicio marcó este comprobante para revisión."));
    if (review.estado !== "pendiente") {
      flags.appendChild(el("p", {"class": "aviso"}, (REVIEW_NAMES[review.estado] || review.estado) + " por " + (review.por || "?") +
        " el " + (review.en || "").replace("T", " ").slice(0, 16) + (review.nota ? ": " + review.nota : "")));
    }
    var warnings = $("advertencias");
    warnings.textContent = "";
    var validation = (upload.result && upload.result.validacion) || {};
    (validation.advertencias || []).forEach(function (w) { warnings.appendChild(el("li", {}, w)); });
    (validation.campos_faltantes || []).forEach(function (f) { warnings.appendChild(el("li", {}, "Falta: " + (LABEL[f] || f))); });
  }

  // A term and its value in a <dl>, nothing when there is no value.
  function addTerm(list, term, value) {
    if (value === null || value === undefined || value === "") return;
    list.appendChild(el("dt", {}, term));
    list.appendChild(el("dd", {}, value));
  }

  function movementSummary(movement) {
    return [movement.fecha, movement.referencia ? "ref. " + movement.referencia : null,
            movement.monto ? "Bs. " + movement.monto : null].filter(Boolean).join(" · ");
  }

  // The receipt's state against the tenant's bank statements and the credit it was matched with.
  function renderReconciliation(upload) {
    var box = $("conciliacion");
    var conciliacion = upload.conciliacion;
    box.hidden = !conciliacion;
    if (!conciliacion) return;
    var tag = $("conciliacion-estado");
    tag.textContent = RECONCILIATION_NAMES[conciliacion.estado] || conciliacion.estado;
    tag.className = "etiqueta conciliacion-" + (RECONCILIATION_NAMES[conciliacion.estado] ? conciliacion.estado : "otro");
    $("conciliacion-motivo").textContent = conciliacion.motivo || "";
    var list = $("conciliacion-datos");
    list.textContent = "";
    var movement = conciliacion.movimiento;
    if (movement) {
      addTerm(list, "Movimiento", "línea " + movement.linea + (movement.extracto ? " del extracto #" + movement.extracto : ""));
      addTerm(list, "Fecha", [movement.fecha, movement.hora].filter(Boolean).join(" "));
      addTerm(list, "Referencia", movement.referencia);
      addTerm(list, "Monto", movement.monto);
      addTerm(list, "Descripción", movement.descripcion);
      addTerm(list, "Coincide en", (conciliacion.coincidencias || []).join(", "));
    }
    (conciliacion.candidatos || []).forEach(function (candidate, index) {
      addTerm(list, "Candidato " + (index + 1), movementSummary(candidate.movimiento || {}));
    });
    var reuse = conciliacion.reutilizacion;
    if (reuse) {
      addTerm(list, "Crédito ya tomado por", "comprobante #" + reuse.recibo);
      addTerm(list, "Movimiento", movementSummary(reuse.movimiento || {}));
    }
  }

  function renderEarlier(upload) {
    var box = $("anterior");
    var reuse = upload.posible_reutilizacion;
    var earlierId = (reuse && reuse.upload_id) || upload.duplicado_de;
    box.hidden = !reuse && !upload.duplicado_de;
    box.parentNode.classList.toggle("con-anterior", !box.hidden);
    if (box.hidden) return;
    $("anterior-motivo").textContent = "Ya se presentó " + (REASONS[reuse && reuse.reason] || "este comprobante") +
      (reuse && reuse.confidence ? " (confianza " + reuse.confidence + ")" : "") + ".";
    var list = $("anterior-datos");
    list.textContent = "";
    var image = $("anterior-imagen");
    image.hidden = true;
    function add(term, value) { addTerm(list, term, value); }
    if (reuse && reuse.other_tenant) { add("Origen", "otra empresa (sin detalles)"); return; }
    var meta = (reuse && reuse.metadata) || {};
    add("Enviado por", [meta.nombre, meta.idWhatsapp].filter(Boolean).join(" · "));
    add("Sorteo", [meta.numerosorteo, meta.fechasorteo].filter(Boolean).join(" · "));
    add("Archivo", reuse && reuse.filename);
    if (!earlierId) return;
    add("Comprobante", "#" + earlierId);
    api("GET", "/api/uploads/" + earlierId).then(function (data) {
      if (!data.success || state.selected !== upload.id) return;
      var other = data.upload;
      add("Recibido", (other.created_at || "").replace("T", " ").slice(0, 16));
      add("Revisión", REVIEW_NAMES[(other.review || {}).estado] || "");
      image.src = other.image_url;
      image.hidden = false;
    });
  }

  function renderCorrections(upload) {
    var list = $("correcciones");
    list.textContent = "";
    (upload.corrections || []).forEach(function (c) {
      list.appendChild(el("li", {}, (LABEL[c.campo] || c.campo) + ": " + (c.anterior === null ? "—" : c.anterior) + " → " +
        (c.nuevo === null ? "—" : c.nuevo) + " (" + c.por + ", " + (c.en || "").replace("T", " ").slice(0, 16) + ")"));
    });
  }

  function showReceipt(upload, options) {
    state.upload = upload;
    $("recibo").hidden = false;
    document.body.classList.add("con-recibo");
    var meta = upload.metadata || {};
    $("recibo-titulo").textContent = "#" + upload.id + " · " + ([meta.nombre, meta.numerosorteo ? "sorteo " + meta.numerosorteo : null]
      .filter(Boolean).join(" · ") || upload.original_name);
    renderFlags(upload);
    renderReconciliation(upload);
    var body = $("campos").querySelector("tbody");
    body.textContent = "";
    FIELDS.forEach(function (f) { body.appendChild(fieldRow(f[0], upload)); });
    if (!(options && options.keepNote)) $("nota").value = (upload.review && upload.review.nota) || "";
    renderEarlier(upload);
    renderCorrections(upload);
    var image = $("imagen");
    var source = upload.image_url;
    if (image.getAttribute("src") !== source) {
      $("cajas").textContent = "";
      image.onload = function () { applyZoom(); drawBoxes(state.upload); };
      image.setAttribute("src", source);
    } else if (image.complete) {
      drawBoxes(upload);
    }
  }

  function openReceipt(id) {
    state.selected = id;
    document.querySelectorAll(".item.activo").forEach(function (n) { n.classList.remove("activo"); });
    var item = $("item-" + id);
    if (item) { item.classList.add("activo"); item.scrollIntoView({block: "nearest"}); }
    if (window.location.hash !== "#recibo=" + id) history.replaceState(null, "", "#recibo=" + id);
    showNotice($("decision"), "", false);
    return api("GET", "/api/uploads/" + id).then(function (data) {
      if (state.selected !== id) return;
      if (!data.success) {
        $("recibo").hidden = true;
        showNotice($("nuevos"), "No se puede abrir el comprobante #" + id + ": " + data.error.message, true);
        return;
      }
      state.zoom = 0;
      showReceipt(data.upload);
    });
  }

  function refreshItem(upload) {
    state.items = state.items.map(function (item) {
      if (item.id !== upload.id) return item;
      var campos = {};
      Object.keys(item.campos || {}).forEach(function (k) { campos[k] = ((upload.result || {}).extracted_fields || {})[k]; });
      return Object.assign({}, item, {revision: (upload.review || {}).estado, campos: campos,
                                      requiere_revision: upload.requiere_revision});
    });
    renderList();
  }

  function decide(estado) {
    if (!state.selected) return;
    var id = state.selected;
    api("POST", "/api/uploads/" + id + "/review", {estado: estado, nota: $("nota").value.trim()}).then(function (data) {
      if (!data.success) { showNotice($("decision"), data.error.message, true); return; }
      showNotice($("decision"), (REVIEW_NAMES[estado] || estado) + ".", false);
      showReceipt(data.upload, {keepNote: true});
      refreshItem(data.upload);
      loadCounts();
    });
  }

  function step(delta) {
    if (!state.items.length) return;
    var index = state.items.findIndex(function (i) { return i.id === state.selected; });
    var next = index < 0 ? 0 : Math.max(0, Math.min(state.items.length - 1, index + delta));
    openReceipt(state.items[next].id);
  }

  function firstFieldToEdit() {
    var upload = state.upload;
    if (!upload) return;
    var detail = (upload.result && upload.result.campos_detalle) || {};
    var fields = (upload.result && upload.result.extracted_fields) || {};
    var pick = FIELDS.map(function (f) { return f[0]; }).filter(function (name) {
      return fields[name] === null || (detail[name] && detail[name].confianza < 0.85);
    })[0] || "monto";
    focusField(pick);
  }

  // --- wiring ---------------------------------------------------------------------------------
  document.addEventListener("keydown", function (e) {
    var typing = /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName);
    if (e.key === "Escape" && typing) { e.target.blur(); return; }
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    var actions = {
      "j": function () { step(1); }, "ArrowDown": function () { step(1); },
      "k": function () { step(-1); }, "ArrowUp": function () { step(-1); },
      "a": function () { decide("aprobado"); }, "r": function () { decide("rechazado"); },
      "e": firstFieldToEdit, "n": function () { $("nota").focus(); }, "/": function () { $("buscar").focus(); },
      "+": function () { zoomBy(1.25); }, "-": function () { zoomBy(0.8); }
    };
    if (actions[e.key]) { e.preventDefault(); actions[e.key](); }
  });
  $("filtros").addEventListener("submit", function (e) { e.preventDefault(); loadQueue(false); loadCounts(); });
  document.querySelectorAll('input[name="estado"]').forEach(function (radio) {
    radio.addEventListener("change", function () { loadQueue(false); });
  });
  $("mas").addEventListener("click", function () { loadQueue(true); });
  $("aprobar").addEventListener("click", function () { decide("aprobado"); });
  $("rechazar").addEventListener("click", function () { decide("rechazado"); });
  $("pendiente").addEventListener("click", function () { decide("pendiente"); });
  $("zoom-mas").addEventListener("click", function () { zoomBy(1.25); });
  $("zoom-menos").addEventListener("click", function () { zoomBy(0.8); });
  $("zoom-ajustar").addEventListener("click", function () { state.zoom = 0; applyZoom(); });
  $("volver").addEventListener("click", function () { document.body.classList.remove("con-recibo"); });
  $("ayuda-atajos").addEventListener("click", function () { $("atajos").hidden = !$("atajos").hidden; });
  window.addEventListener("hashchange", function () {
    var match = /recibo=(\d+)/.exec(window.location.hash);
    if (match && parseInt(match[1], 10) !== state.selected) openReceipt(parseInt(match[1], 10));
  });
  window.addEventListener("resize", function () { if (!state.zoom) applyZoom(); });

  loadQueue(false).then(function () {
    var match = /recibo=(\d+)/.exec(window.location.hash);
    if (match) openReceipt(parseInt(match[1], 10));
  });
  loadCounts();
  window.setInterval(poll, POLL_MS);
})();
