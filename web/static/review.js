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
  var CHANNEL_NAMES = {pago_movil: "Pago móvil", transferencia: "Transferencia"};
  var MATCH_NAMES = {monto: "el monto", fecha: "la fecha", referencia: "la referencia", telefono: "el teléfono",
                     cedula: "la cédula", banco: "el banco", rif: "el RIF", hora: "la hora"};
  var WARNING_NAMES = {sin_monto: "no tiene monto", sin_referencia: "no tiene referencia", sin_fecha: "no tiene fecha",
                       sin_conciliacion: "no está conciliado con el banco",
                       conciliacion_pendiente: "aún no está conciliado con el banco (pendiente)",
                       conciliacion_no_encontrado: "el banco no muestra este pago (no encontrado)",
                       conciliacion_ambiguo: "varios créditos del banco podrían ser este pago (ambiguo)"};
  // What each field accepts, said as the clerk would type it (the API's reasons name its own types).
  var FIELD_HINTS = {
    monto: "Escribe el monto como 210,00 (con coma y dos decimales).",
    fecha: "Escribe la fecha como 20/06/2025.",
    referencia: "Escribe solo los dígitos de la referencia, por ejemplo 405622415499.",
    comprobante: "Escribe solo los dígitos del comprobante, por ejemplo 000123456.",
    telefono: "Escribe el teléfono como 0414-1234567.",
    cedula: "Escribe la cédula como V-12345678.",
    identificador_fiscal: "Escribe el RIF como J-12345678-9.",
    hora_operacion: "Escribe la hora como 14:30.",
    cuenta_origen: "Escribe la cuenta con sus 20 dígitos, o como aparece en el comprobante (0102****4821).",
    cuenta_destino: "Escribe la cuenta con sus 20 dígitos, o como aparece en el comprobante (0102****4821).",
    banco_origen: "Escribe el nombre de un banco venezolano, por ejemplo Banesco o Banco de Venezuela.",
    banco_destino: "Escribe el nombre de un banco venezolano, por ejemplo Banesco o Banco de Venezuela.",
    tipo_transaccion: "Escribe Pago móvil o Transferencia."
  };
  // The API's error codes as sentences a clerk reads.
  var ERROR_MESSAGES = {
    csrf_failed: "La página venció. Vuelva a cargarla e inténtelo de nuevo.",
    not_found: "Ese comprobante no existe o no es de su empresa.",
    not_processed: "El comprobante aún no se ha leído; podrá corregirlo cuando termine.",
    database_unavailable: "El servicio no puede leer sus datos en este momento. Inténtelo de nuevo en unos segundos.",
    storage_unavailable: "El servicio no puede leer sus archivos en este momento. Inténtelo de nuevo en unos segundos.",
    rate_limited: "Demasiadas solicitudes seguidas. Espere un momento y vuelva a intentarlo.",
    invalid_parameter: "Uno de los datos enviados no es válido.",
    invalid_field: "Uno de los campos no es válido.",
    invalid_json: "La página envió datos ilegibles. Vuelva a cargarla.",
    forbidden: "Su cuenta no puede hacer esto.",
    unauthorized: "Su sesión terminó. Vuelva a entrar."
  };
  var UPLOAD_ERRORS = {too_many_attempts: "se intentó leer varias veces sin éxito"};
  var POLL_MS = 8000;
  var PAGE = 30;

  var el = window.Desk.el, api = window.Desk.api;
  var ZONE = (document.getElementById("mesa") || document.body).getAttribute("data-zona") || "America/Caracas";
  var $ = function (id) { return document.getElementById(id); };
  var state = {items: [], cursor: null, selected: null, upload: null, zoom: 0, topId: 0};


  // --- Venezuelan formats (the API stays ISO) -------------------------------------------------
  function groupThousands(digits) { return digits.replace(/\B(?=(\d{3})+(?!\d))/g, "."); }

  // "21070.56" -> "21.070,56"; anything that is not a canonical amount is shown as it is.
  function amountText(value) {
    var match = /^(-?)(\d+)(?:\.(\d{1,2}))?$/.exec(String(value === null || value === undefined ? "" : value));
    if (!match) return value === null || value === undefined ? "" : String(value);
    return match[1] + groupThousands(match[2]) + "," + ((match[3] || "") + "00").slice(0, 2);
  }

  function money(value) { return amountText(value) + " Bs"; }

  // "2025-06-20" -> "20/06/2025".
  function dateText(value) {
    var match = /^(\d{4})-(\d{2})-(\d{2})/.exec(String(value || ""));
    return match ? match[3] + "/" + match[2] + "/" + match[1] : (value === null || value === undefined ? "" : String(value));
  }

  var timeFormat = (function () {
    try {
      return new Intl.DateTimeFormat("es-VE", {timeZone: ZONE, day: "2-digit", month: "2-digit", year: "numeric",
                                                hour: "2-digit", minute: "2-digit", hourCycle: "h23"});
    } catch (e) {
      return new Intl.DateTimeFormat("es-VE", {timeZone: "America/Caracas", day: "2-digit", month: "2-digit",
                                                year: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23"});
    }
  })();

  // An instant of the API (UTC, ISO 8601) in the desk's time zone: "06/12/2026 21:47".
  function timeText(iso) {
    if (!iso) return "";
    var text = String(iso);
    // The API's instants are UTC; one written without its zone is UTC too, never the browser's zone.
    if (!/(Z|[+-]\d{2}:?\d{2})$/.test(text)) text += "Z";
    var moment = new Date(text);
    if (isNaN(moment.getTime())) return String(iso);
    var parts = {};
    timeFormat.formatToParts(moment).forEach(function (p) { parts[p.type] = p.value; });
    return parts.day + "/" + parts.month + "/" + parts.year + " " + parts.hour + ":" + parts.minute;
  }

  // A field's value as the page shows and edits it.
  function shownValue(name, value) {
    if (value === null || value === undefined) return "";
    if (name === "monto") return amountText(value);
    if (name === "fecha") return dateText(value);
    if (name === "tipo_transaccion") return CHANNEL_NAMES[value] || String(value);
    return String(value);
  }

  // What is typed, as the API reads it (words of a catalog field back to its value).
  function typedValue(name, text) {
    if (name === "tipo_transaccion") {
      var folded = text.toLowerCase().normalize("NFD").replace(/[\u0300-\u036f]/g, "").replace(/[\s_]+/g, " ").trim();
      if (folded === "pago movil") return "pago_movil";
      if (folded === "transferencia") return "transferencia";
    }
    return text;
  }

  function errorText(error) {
    error = error || {};
    return ERROR_MESSAGES[error.code] || "No se pudo completar la acción. Inténtelo de nuevo.";
  }

  // The API's reason for refusing a field's value, as a sentence that says what is accepted.
  function fieldErrorText(name, reason) {
    var hint = FIELD_HINTS[name];
    if (/^debe ser uno de: /.test(reason || "")) return "Escribe uno de estos: " + reason.slice(17) + ".";
    if (/no reconocido/.test(reason || "")) return "Ese banco no está en el catálogo. " + (hint || "");
    return hint || "Ese valor no se puede leer.";
  }

  // A validation warning ("monto: confianza 0.72 por debajo del mínimo 0.85") in words.
  function warningText(text) {
    var match = /^([a-z_]+): (.*)$/.exec(String(text));
    if (match && match[1] === "posible_reutilizacion")
      return "Posible reúso: ya se presentó " + (REASONS[match[2]] || "este pago") + ".";
    if (!match || !LABEL[match[1]]) return String(text).replace(/_/g, " ");
    var rest = match[2];
    var low = /^confianza ([\d.]+) por debajo del mínimo ([\d.]+)/.exec(rest);
    if (low) rest = "se leyó con poca seguridad (" + Math.round(parseFloat(low[1]) * 100) + " %, se pide " +
      Math.round(parseFloat(low[2]) * 100) + " %)";
    return LABEL[match[1]] + ": " + rest;
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

  function exportHref(format) {
    var params = filterParams();
    params.set("format", format || "csv");
    return "/api/review_queue?" + params.toString();
  }

  function describeItem(item) {
    var campos = item.campos || {};
    var who = (item.metadata && (item.metadata.nombre || item.metadata.idWhatsapp)) || item.original_name;
    return {
      title: (campos.monto ? money(campos.monto) : "sin monto") + " · " + (campos.referencia || "sin referencia"),
      sub: [who, campos.banco_origen, item.metadata && item.metadata.numerosorteo ? "sorteo " + item.metadata.numerosorteo : null,
            timeText(item.created_at)].filter(Boolean).join(" · ")
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
    $("exportar-xlsx").setAttribute("href", exportHref("xlsx"));
  }

  function loadQueue(append) {
    var params = filterParams();
    params.set("limit", PAGE);
    if (append && state.cursor) params.set("cursor", state.cursor);
    return api("GET", "/api/review_queue?" + params.toString()).then(function (data) {
      if (!data.success) { showNotice($("nuevos"), errorText(data.error), true); return; }
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
      var node = el("div", {"class": "caja " + confidenceClass(d.confianza), "data-campo": f[0], "tabindex": "-1",
                            "title": f[1] + ": " + shownValue(f[0], d.valor), "aria-label": f[1]});
      node.style.left = (100 * box[0] / width) + "%";
      node.style.top = (100 * box[1] / height) + "%";
      node.style.width = (100 * (box[2] - box[0]) / width) + "%";
      node.style.height = (100 * (box[3] - box[1]) / height) + "%";
      node.appendChild(el("span", {"class": "caja-nombre"}, f[1]));
      linkHover(node, f[0]);
      node.addEventListener("click", function () { focusField(f[0]); });
      layer.appendChild(node);
    });
    layoutCaptions();
  }

  function intersects(a, b) {
    return a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  }

  // Captions outside their box: above it, else below it, else shown only on hover or focus, so a
  // caption never covers another caption or any box (the value read).
  function layoutCaptions() {
    var boxes = Array.prototype.slice.call(document.querySelectorAll("#cajas .caja"));
    var boxRects = boxes.map(function (b) { return b.getBoundingClientRect(); });
    var canvas = $("lienzo").getBoundingClientRect();
    var inside = function (r) { return r.top >= canvas.top && r.bottom <= canvas.bottom && r.left >= canvas.left && r.right <= canvas.right; };
    var placed = [];
    boxes.forEach(function (box, index) {
      var caption = box.querySelector(".caja-nombre");
      if (!caption) return;
      var spots = ["arriba", "abajo"];
      for (var i = 0; i < spots.length; i++) {
        box.classList.remove("nombre-arriba", "nombre-abajo", "nombre-oculto");
        box.classList.add("nombre-" + spots[i]);
        var rect = caption.getBoundingClientRect();
        var free = inside(rect) && !placed.some(function (p) { return intersects(rect, p); }) &&
          !boxRects.some(function (r) { return intersects(rect, r); });
        if (free) { placed.push(rect); return; }
      }
      box.classList.remove("nombre-arriba", "nombre-abajo");
      box.classList.add("nombre-oculto");
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
    layoutCaptions();
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
    var line = el("div", {"class": "campo-linea"});
    var input = el("input", {"id": "campo-" + name, "name": name, "type": "text", "autocomplete": "off",
                             "placeholder": "—", "maxlength": "255", "aria-describedby": "error-" + name});
    input.value = shownValue(name, value);
    input.setAttribute("data-original", input.value);
    input.disabled = upload.status !== "processed";
    input.addEventListener("keydown", function (e) {
      if (e.key === "Enter") { e.preventDefault(); saveField(name, input); }
      if (e.key === "Escape") { restoreField(name, input); input.blur(); }
    });
    input.addEventListener("change", function () { saveField(name, input); });
    line.appendChild(input);
    if (name === "monto") line.appendChild(el("span", {"class": "unidad"}, "Bs"));
    // Emptying a box is not a save: leaving a field empty is this button's own action.
    var empty = el("button", {"type": "button", "class": "secundario vaciar", "id": "vaciar-" + name, "hidden": "hidden"},
                   "Dejar vacío");
    empty.addEventListener("mousedown", function (e) { e.preventDefault(); });  // keep the box's focus: no blur first
    empty.addEventListener("click", function () { clearField(name, input); });
    line.appendChild(empty);
    cell.appendChild(line);
    if (value === null || value === undefined) cell.appendChild(el("div", {"class": "motivo"}, detail.motivo || "no encontrado"));
    else if (detail.corregido || (result.campos_detalle && result.campos_detalle[name] && "valor_extraido" in detail))
      cell.appendChild(el("div", {"class": "motivo"}, "leído: " + (detail.valor_extraido === null ? "—" : shownValue(name, detail.valor_extraido))));
    cell.appendChild(el("div", {"class": "error-campo", "id": "error-" + name, "role": "alert"}));
    row.appendChild(cell);
    var confidence = detail.confianza;
    var conf = detail.corregido ? el("td", {"class": "conf corregido", "title": "Corregido a mano"}, "a mano")
      : el("td", {"class": "conf " + confidenceClass(value === null ? null : confidence)},
           value === null || confidence === undefined || confidence === null ? "" : Math.round(confidence * 100) + " %");
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

  function restoreField(name, input) {
    input.value = input.getAttribute("data-original");
    setFieldError(name, "");
    var empty = $("vaciar-" + name);
    if (empty) empty.hidden = true;
  }

  function saveField(name, input) {
    var value = input.value.trim();
    var empty = $("vaciar-" + name);
    if (value === input.getAttribute("data-original")) { setFieldError(name, ""); if (empty) empty.hidden = true; return; }
    if (value === "") {
      // A slip (or a box cleared to type again) never erases the value: nothing is sent.
      setFieldError(name, "Vacío: no se guardó. Escribe el valor, pulsa «Dejar vacío» para borrarlo, o Esc para volver.");
      if (empty) empty.hidden = false;
      return;
    }
    var body = {};
    body[name] = typedValue(name, value);
    sendField(name, input, body);
  }

  function clearField(name, input) {
    var body = {};
    body[name] = null;
    sendField(name, input, body);
  }

  function sendField(name, input, body) {
    if (input.saving) return;  // Enter, then the blur's change event: one request
    input.saving = true;
    input.classList.add("guardando");
    api("PATCH", "/api/uploads/" + state.selected + "/fields", body).then(function (data) {
      input.classList.remove("guardando");
      input.saving = false;
      if (!data.success) {
        var details = data.error.details || {};
        var reasons = details.reasons || {};
        var named = Object.keys(reasons);
        named.forEach(function (f) { setFieldError(f, fieldErrorText(f, reasons[f])); });
        if (!named.length) setFieldError(details.field || name, errorText(data.error));
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

  // Why the service flagged this receipt, in words.
  function flagReasons(upload) {
    var reasons = [];
    var validation = (upload.result && upload.result.validacion) || {};
    (validation.campos_faltantes || []).forEach(function (f) { reasons.push("falta " + (LABEL[f] || f).toLowerCase()); });
    (validation.advertencias || []).forEach(function (w) {
      var match = /^([a-z_]+): (.*)$/.exec(String(w));
      // Field warnings only: a reuse warning is said below with the receipt it repeats.
      if (!match || !LABEL[match[1]] || (validation.campos_faltantes || []).indexOf(match[1]) >= 0) return;
      var low = /^confianza ([\d.]+)/.exec(match[2]);
      var label = (LABEL[match[1]] || match[1]).toLowerCase();
      reasons.push(low ? label + " se leyó con poca seguridad (" + Math.round(parseFloat(low[1]) * 100) + " %)"
                       : label + " no es válido (" + match[2] + ")");
    });
    if (upload.duplicado_de) reasons.push("es la misma imagen que el comprobante #" + upload.duplicado_de);
    var reuse = upload.posible_reutilizacion;
    if (reuse && !upload.duplicado_de) reasons.push("ya se presentó " + (REASONS[reuse.reason] || "este pago") +
      (reuse.upload_id ? " en el comprobante #" + reuse.upload_id : " en otra empresa"));
    return reasons;
  }

  function renderFlags(upload) {
    var flags = $("banderas");
    flags.textContent = "";
    var review = upload.review || {estado: "pendiente"};
    var tag = $("recibo-estado");
    tag.textContent = REVIEW_NAMES[review.estado] || review.estado;
    tag.className = "etiqueta " + review.estado;
    if (upload.status === "error" && upload.error) flags.appendChild(el("p", {"class": "aviso error"},
      "No se pudo leer este comprobante" + (UPLOAD_ERRORS[upload.error.code] ? ": " + UPLOAD_ERRORS[upload.error.code] : "") + "."));
    if (upload.status !== "processed" && upload.status !== "error") flags.appendChild(el("p", {"class": "aviso"}, "Aún en proceso."));
    var reasons = flagReasons(upload);
    if (upload.requiere_revision || reasons.length) {
      flags.appendChild(el("p", {"class": "aviso", "id": "motivo-revision"}, "Para revisar: " +
        (reasons.length ? reasons.join("; ") : "el servicio no está seguro de la lectura") + "."));
    }
    if (review.estado !== "pendiente") {
      var warned = (review.avisos || []).map(function (w) { return WARNING_NAMES[w] || w; });
      flags.appendChild(el("p", {"class": "aviso", "id": "decidido"}, (REVIEW_NAMES[review.estado] || review.estado) + " por " +
        (review.por || "?") + " el " + timeText(review.en) + (warned.length ? " aunque " + warned.join(", ") : "") +
        (review.nota ? ": " + review.nota : "")));
    }
    var warnings = $("advertencias");
    warnings.textContent = "";
    var validation = (upload.result && upload.result.validacion) || {};
    (validation.advertencias || []).forEach(function (w) { warnings.appendChild(el("li", {}, warningText(w))); });
  }

  // A term and its value in a <dl>, nothing when there is no value.
  function addTerm(list, term, value) {
    if (value === null || value === undefined || value === "") return;
    list.appendChild(el("dt", {}, term));
    list.appendChild(el("dd", {}, value));
  }

  function movementSummary(movement) {
    return [dateText(movement.fecha), movement.referencia ? "ref. " + movement.referencia : null,
            movement.monto ? money(movement.monto) : null].filter(Boolean).join(" · ");
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
      addTerm(list, "Fecha", [dateText(movement.fecha), movement.hora].filter(Boolean).join(" "));
      addTerm(list, "Referencia", movement.referencia);
      addTerm(list, "Monto", movement.monto ? money(movement.monto) : null);
      addTerm(list, "Descripción", movement.descripcion);
      addTerm(list, "Coincide en", (conciliacion.coincidencias || []).map(function (m) { return MATCH_NAMES[m] || m; }).join(", "));
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
      (reuse && reuse.confidence ? " (coincidencia " + (typeof reuse.confidence === "number" ?
        Math.round(reuse.confidence * 100) + " %" : reuse.confidence) + ")" : "") + ".";
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
      add("Recibido", timeText(other.created_at));
      add("Revisión", REVIEW_NAMES[(other.review || {}).estado] || "");
      image.src = other.image_url;
      image.hidden = false;
    });
  }

  // The receipt's history: every correction (old -> new, who, when, with a way to undo it) and
  // every decision, oldest first.
  function renderCorrections(upload) {
    var list = $("correcciones");
    list.textContent = "";
    var undone = {};
    (upload.corrections || []).forEach(function (c) { if (c.deshace) undone[c.deshace] = true; });
    var entries = (upload.corrections || []).map(function (c) { return {en: c.en, correction: c}; })
      .concat((upload.decisiones || []).map(function (d) { return {en: d.en, decision: d}; }));
    entries.sort(function (a, b) { return (a.en || "") < (b.en || "") ? -1 : (a.en || "") > (b.en || "") ? 1 : 0; });
    entries.forEach(function (entry) {
      var li;
      if (entry.correction) {
        var c = entry.correction;
        var shown = function (v) { return v === null || v === undefined ? "vacío" : shownValue(c.campo, v); };
        li = el("li", {"class": "historia-correccion", "data-correccion": c.id},
                (LABEL[c.campo] || c.campo) + ": " + shown(c.anterior) + " → " + shown(c.nuevo) +
                (c.deshace ? " (deshace un cambio)" : "") + " · " + c.por + ", " + timeText(c.en));
        if (undone[c.id]) li.appendChild(el("span", {"class": "deshecha"}, " · deshecho"));
        else if (upload.status === "processed") {
          var button = el("button", {"type": "button", "class": "secundario deshacer", "id": "deshacer-" + c.id}, "Deshacer");
          button.addEventListener("click", function () { undo(c.id); });
          li.appendChild(button);
        }
      } else {
        var d = entry.decision;
        var warned = (d.avisos || []).map(function (w) { return WARNING_NAMES[w] || w; });
        li = el("li", {"class": "historia-decision"}, (REVIEW_NAMES[d.estado] || d.estado) +
                (warned.length ? " aunque " + warned.join(", ") : "") + (d.nota ? ": " + d.nota : "") + " · " + d.por +
                ", " + timeText(d.en));
      }
      list.appendChild(li);
    });
    $("historial-vacio").hidden = entries.length > 0;
  }

  function undo(correctionId) {
    var id = state.selected;
    api("POST", "/api/uploads/" + id + "/corrections/" + correctionId + "/undo", {}).then(function (data) {
      if (!data.success) { showNotice($("decision"), errorText(data.error), true); return; }
      showNotice($("decision"), "Cambio deshecho.", false);
      showReceipt(data.upload, {keepNote: true});
      refreshItem(data.upload);
      loadCounts();
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
        showNotice($("nuevos"), "No se puede abrir el comprobante #" + id + ": " + errorText(data.error), true);
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

  // What approving this receipt would be in spite of (the service records the same list).
  function approvalWarnings(upload) {
    var fields = (upload.result && upload.result.extracted_fields) || {};
    var found = ["monto", "referencia", "fecha"].filter(function (f) { return fields[f] === null || fields[f] === undefined || fields[f] === ""; })
      .map(function (f) { return "sin_" + f; });
    var estado = (upload.conciliacion || {}).estado;
    if (estado !== "conciliado") found.push(estado ? "conciliacion_" + estado : "sin_conciliacion");
    return found;
  }

  function decide(estado, confirmed) {
    if (!state.selected || !state.upload) return;
    var id = state.selected;
    var warnings = estado === "aprobado" ? approvalWarnings(state.upload) : [];
    if (warnings.length && !confirmed) { askApproval(warnings); return; }
    api("POST", "/api/uploads/" + id + "/review", {estado: estado, nota: $("nota").value.trim()}).then(function (data) {
      if (!data.success) { showNotice($("decision"), errorText(data.error), true); return; }
      showNotice($("decision"), (REVIEW_NAMES[estado] || estado) + ".", false);
      showReceipt(data.upload, {keepNote: true});
      refreshItem(data.upload);
      loadCounts();
    });
  }

  // Approving a receipt with an empty amount, reference or date, or not reconciled, asks first.
  function askApproval(warnings) {
    var box = $("confirmar");
    var list = $("confirmar-avisos");
    list.textContent = "";
    warnings.forEach(function (w) { list.appendChild(el("li", {}, "Este comprobante " + (WARNING_NAMES[w] || w) + ".")); });
    box.hidden = false;
    $("confirmar-si").focus();
  }

  function closeApproval() { $("confirmar").hidden = true; }

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
    if (!$("confirmar").hidden) {
      if (e.key === "Escape") { e.preventDefault(); closeApproval(); }
      return;
    }
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
  $("confirmar-si").addEventListener("click", function () { closeApproval(); decide("aprobado", true); });
  $("confirmar-no").addEventListener("click", closeApproval);
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
  window.addEventListener("resize", function () { if (!state.zoom) applyZoom(); else layoutCaptions(); });

  loadQueue(false).then(function () {
    var match = /recibo=(\d+)/.exec(window.location.hash);
    if (match) openReceipt(parseInt(match[1], 10));
  });
  loadCounts();
  window.setInterval(poll, POLL_MS);
})();
