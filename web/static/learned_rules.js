// The learned rules page: the tenant's proposals and rules from GET /api/learned_rules, with accept and
// switch-off buttons for admins (POST /api/learned_rules/<id>/accept|switch_off, with the session's CSRF
// token). Text from receipts is only ever set as textContent.
(function () {
  "use strict";

  var STATES = {propuesta: "Propuesta", activa: "Activa", desactivada: "Desactivada"};
  var POSITIONS = {right: "a la derecha", below: "debajo"};
  var el = window.Desk.el, api = window.Desk.api;
  var admin = document.querySelector("main.reglas").getAttribute("data-admin") === "si";
  var $ = function (id) { return document.getElementById(id); };
  var cursor = null;



  function say(text, error) {
    var box = $("mensaje-reglas");
    box.textContent = text;
    box.className = error ? "aviso error" : "aviso";
    box.hidden = !text;
  }

  function who(rule) {
    if (rule.estado === "activa") return rule.aceptada_por;
    if (rule.estado === "desactivada") return rule.desactivada_por;
    return rule.propuesta_por;
  }

  function row(rule) {
    var tr = el("tr", {"data-id": rule.id});
    [rule.campo, rule.etiqueta, POSITIONS[rule.posicion] || rule.posicion, rule.banco || "—",
     rule.valor_ejemplo || "", rule.veces, STATES[rule.estado] || rule.estado, who(rule) || ""]
      .forEach(function (text) { tr.appendChild(el("td", {}, text)); });
    var actions = el("td", {class: "acciones"});
    if (admin && rule.estado !== "activa") actions.appendChild(button(rule, "accept", "Aceptar"));
    if (admin && rule.estado !== "desactivada") actions.appendChild(button(rule, "switch_off", "Desactivar"));
    tr.appendChild(actions);
    return tr;
  }

  function button(rule, action, text) {
    var b = el("button", {type: "button", class: action === "accept" ? "" : "secundario"}, text);
    b.addEventListener("click", function () {
      b.disabled = true;
      var reread = $("releer-pendientes");
      var body = action === "accept" && reread && reread.checked ? {releer_pendientes: true} : {};
      api("POST", "/api/learned_rules/" + rule.id + "/" + action, body).then(function (data) {
        if (!data.success) { say((data.error && data.error.message) || "No se pudo cambiar la regla", true); return; }
        var note = typeof data.releidos === "number" ? " Comprobantes pendientes releídos: " + data.releidos + "." : "";
        say(action === "accept" ? "Regla aceptada: se aplica a los próximos comprobantes de ese diseño." + note
                                : "Regla desactivada.", false);
        load(false);
      }).catch(function (e) { say(e.message, true); }).then(function () { b.disabled = false; });
    });
    return b;
  }

  function load(more) {
    var params = new URLSearchParams();
    var estado = document.querySelector('#filtro-reglas input[name="estado"]:checked').value;
    if (estado) params.set("estado", estado);
    params.set("limit", "50");
    if (more && cursor) params.set("cursor", cursor);
    api("GET", "/api/learned_rules?" + params.toString()).then(function (data) {
      if (!data.success) { say((data.error && data.error.message) || "No se pudo leer la lista", true); return; }
      var body = $("lista-reglas");
      if (!more) body.textContent = "";
      data.items.forEach(function (rule) { body.appendChild(row(rule)); });
      if (!more && !data.items.length) body.appendChild(el("tr", {}, "")).appendChild(el("td", {colspan: "9"}, "Nada por aquí."));
      cursor = data.next_cursor;
      $("mas-reglas").hidden = !cursor;
    }).catch(function (e) { say(e.message, true); });
  }

  $("filtro-reglas").addEventListener("change", function (event) {
    if (event.target.name === "estado") load(false);
  });
  $("mas-reglas").addEventListener("click", function () { load(true); });
  load(false);
})();
