// Progressive enhancement of the registration and editing forms; every page works without it.
// - "More rows" (a submit button that brings the page back with more rows) and "Add a row"
//   (shown by this script) add a blank row of a formset in place, from its <template>.
// - A form marked data-upload-progress is sent by htmx (hx-post): the upload's progress
//   shows in its <progress>, and a refusal (the form again, with its error) replaces the page's
//   <main> instead of being dropped as an error. Success answers with HX-Redirect.
// No inline script or style anywhere: the Content-Security-Policy forbids both.
(function () {
  "use strict";
  if (window.modelvaultForms) {
    return; // a page swapped in by htmx brings this script again: its listeners stand
  }
  window.modelvaultForms = true;

  function addRow(prefix) {
    var template = document.getElementById(prefix + "-template");
    var body = document.getElementById(prefix + "-rows");
    var total = document.querySelector('input[name="' + prefix + '-TOTAL_FORMS"]');
    if (!template || !body || !total) {
      return false;
    }
    var index = parseInt(total.value, 10) || 0;
    var max = document.querySelector('input[name="' + prefix + '-MAX_NUM_FORMS"]');
    if (max && index >= parseInt(max.value, 10)) {
      return true;
    }
    body.insertAdjacentHTML("beforeend", template.innerHTML.replace(/__prefix__/g, String(index)));
    total.value = String(index + 1);
    var first = body.lastElementChild && body.lastElementChild.querySelector("input, select");
    if (first) {
      first.focus();
    }
    return true;
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-add-row]");
    if (button && addRow(button.getAttribute("data-add-row"))) {
      event.preventDefault();
    }
  });

  function reveal() {
    document.querySelectorAll("button[data-add-row][hidden]").forEach(function (button) {
      button.hidden = false;
    });
  }
  reveal();
  document.addEventListener("htmx:afterSettle", reveal);

  function uploadForm(event) {
    // The element that sent the request (htmx:beforeSwap fires on the target, not on it).
    var config = event.detail && event.detail.requestConfig;
    var element = (config && config.elt) || event.target;
    return element && element.closest ? element.closest("[data-upload-progress]") : null;
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = uploadForm(event);
    if (!form) {
      return;
    }
    form.querySelectorAll("button[type=submit]").forEach(function (button) {
      button.disabled = true;
    });
    var status = form.querySelector("#upload-status");
    if (status) {
      status.textContent = "Sending…";
    }
  });

  document.addEventListener("htmx:xhr:progress", function (event) {
    var form = uploadForm(event);
    var detail = event.detail || {};
    if (!form || !detail.lengthComputable || !detail.total) {
      return;
    }
    var bar = form.querySelector("#upload-progress");
    var status = form.querySelector("#upload-status");
    var percent = Math.floor((detail.loaded * 100) / detail.total);
    if (bar) {
      bar.hidden = false;
      bar.value = percent;
      bar.textContent = percent + "%";
    }
    if (status) {
      status.textContent = percent < 100 ? "Uploading… " + percent + "%" : "Storing and hashing…";
    }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    var form = uploadForm(event);
    if (form && form.isConnected) {
      form.querySelectorAll("button[type=submit]").forEach(function (button) {
        button.disabled = false;
      });
    }
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail && event.detail.xhr ? event.detail.xhr.status : 0;
    if (uploadForm(event) && status >= 400 && status < 600) {
      event.detail.shouldSwap = true; // the form again, with what was refused
      event.detail.isError = false;
    }
  });
})();
