// What the review desk's pages share: building elements whose text is only ever set as textContent,
// and calling the API with the session's cookie and CSRF token (401 goes back to the login page).
// Loaded before review.js and learned_rules.js, as window.Desk.
(function () {
  "use strict";

  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "class") node.className = attrs[k]; else node.setAttribute(k, attrs[k]);
    });
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // The JSON answer with its HTTP status as `httpStatus`; a body that is not JSON reads as an error.
  function api(method, path, body) {
    var options = {method: method, credentials: "same-origin", headers: {"Accept": "application/json"}};
    if (method !== "GET") {
      options.headers["X-CSRF-Token"] = csrf;
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body || {});
    }
    return fetch(path, options).then(function (response) {
      if (response.status === 401) { window.location.href = "/review/login"; throw new Error("sesión vencida"); }
      return response.json()
        .catch(function () { return {success: false, error: {code: "ilegible", message: "Respuesta ilegible"}}; })
        .then(function (data) { data.httpStatus = response.status; return data; });
    });
  }

  window.Desk = {el: el, api: api};
})();
