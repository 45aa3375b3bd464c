/* The privacy center, better with JavaScript: a download or deletion in progress updates in
 * place (status, receipts, the download link) and is announced, without reloading. Without
 * JavaScript the page is the same, and reloading it shows the same. */
(function () {
  "use strict";
  var table = document.getElementById("requests");
  var announce = document.getElementById("requests-status");
  if (!table || !announce || !window.fetch) return;
  var tries = 0;

  function pending() {
    return table.querySelectorAll("tr[data-status]:not([data-status=completed])").length > 0;
  }

  function update(request) {
    var row = table.querySelector('tr[data-request-id="' + CSS.escape(request.id) + '"]');
    if (!row || row.getAttribute("data-status") === request.status) return;
    row.setAttribute("data-status", request.status);
    var status = row.querySelector(".status");
    status.textContent = request.status.replace("_", " ");
    if (request.download) {
      var link = document.createElement("a");
      link.href = request.download;
      link.setAttribute("download", "");
      link.textContent = "download";
      status.append(" (", link, ")");
    }
    row.querySelector(".receipts").textContent = request.receipts.join("; ");
    if (request.status === "completed") {
      announce.textContent = request.kind_name + ": completed.";
    }
  }

  function poll() {
    if (!pending() || tries++ > 90) return;
    fetch("/privacy/requests.json", { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (!response.ok) throw new Error(String(response.status));
        return response.json();
      })
      .then(function (requests) {
        requests.forEach(update);
        setTimeout(poll, 2000);
      })
      .catch(function () { /* the session ended: the plain page says so on reload */ });
  }

  setTimeout(poll, 1000);
})();
