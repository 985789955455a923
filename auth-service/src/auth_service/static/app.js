// gatepass: the web page's script. It never sees a token: the session lives in HttpOnly cookies
// and the auth service calls the other services for the page. Every post sends the CSRF token
// the server rendered into <meta name="csrf-token">; a 401 means the access token ran out, so
// the session is refreshed (POST /app/refresh) and the post tried once more.
"use strict";

(function () {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.getAttribute("content") : "";
  const statusBox = document.getElementById("status");

  function say(message) {
    if (statusBox) {
      statusBox.textContent = message;
    }
  }

  function send(url) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": csrf, Accept: "application/json" },
    });
  }

  // One refresh at a time: two at once would present the same refresh token twice, and the
  // loser's rotated cookies could overwrite the winner's.
  let refreshing = null;

  function refreshSession() {
    if (refreshing === null) {
      refreshing = send("/app/refresh")
        .then(function (answer) {
          return answer.status === 204;
        })
        .finally(function () {
          refreshing = null;
        });
    }
    return refreshing;
  }

  async function post(url) {
    let answer = await send(url);
    if (answer.status === 401 && (await refreshSession())) {
      answer = await send(url);
    }
    return answer;
  }

  async function problemText(answer) {
    try {
      const problem = await answer.json();
      if (problem && typeof problem.detail === "string") {
        return problem.detail;
      }
    } catch (ignored) {
      // not JSON: the status says enough
    }
    return "The request failed (HTTP " + answer.status + ").";
  }

  // Forms with data-post (log out, sign a device out): posted by the script, so that an access
  // token that ran out is refreshed first; without the script they post as plain forms.
  document.querySelectorAll("form[data-post]").forEach(function (form) {
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      const button = form.querySelector("button");
      if (button) {
        button.disabled = true;
      }
      try {
        const answer = await post(form.getAttribute("data-post"));
        if (answer.ok || answer.status === 401) {
          window.location.assign("/app");
          return;
        }
        say(await problemText(answer));
      } catch (error) {
        say("The service could not be reached. Try again.");
      } finally {
        if (button) {
          button.disabled = false;
        }
      }
    });
  });

  // The buttons that call another service for the signed-in user.
  const result = document.getElementById("call-result");

  function showResult(title, body) {
    if (!result) {
      return;
    }
    result.replaceChildren();
    const heading = document.createElement("p");
    heading.className = "answer-status";
    heading.textContent = title;
    result.appendChild(heading);
    if (body !== undefined) {
      const pre = document.createElement("pre");
      pre.className = "json";
      pre.tabIndex = 0;
      pre.textContent = JSON.stringify(body, null, 2);
      result.appendChild(pre);
    }
  }

  document.querySelectorAll("button[data-call]").forEach(function (button) {
    button.addEventListener("click", async function () {
      const name = button.getAttribute("data-call");
      button.disabled = true;
      showResult("Calling " + name + "…");
      try {
        const answer = await post("/app/api/call/" + encodeURIComponent(name));
        if (answer.ok) {
          const call = await answer.json();
          showResult(name + " answered HTTP " + call.status, call.body);
        } else if (answer.status === 401) {
          showResult("You are signed out. Sign in again to call " + name + ".");
        } else {
          showResult(await problemText(answer));
        }
      } catch (error) {
        showResult("The service could not be reached. Try again.");
      } finally {
        button.disabled = false;
      }
    });
  });

  // Signed out as far as the page can tell: the access cookie may just have run out while the
  // session lives on (the refresh cookie goes to /app/refresh alone). Try once; a success
  // reloads the page signed in, or (the hosted sign-in page of an authorization request) goes
  // back to that request, which the server rendered and checked. Once per few seconds at most,
  // so nothing ever loops.
  if (document.body.hasAttribute("data-try-refresh")) {
    const returnTo = document.body.getAttribute("data-return-to");
    const key = "gatepass-refresh-tried";
    const last = Number(window.sessionStorage.getItem(key) || "0");
    if (Date.now() - last > 10000) {
      window.sessionStorage.setItem(key, String(Date.now()));
      refreshSession()
        .then(function (refreshed) {
          if (refreshed && returnTo && returnTo.startsWith("/authorize?")) {
            window.location.assign(returnTo);
          } else if (refreshed) {
            window.location.reload();
          }
        })
        .catch(function () {});
    }
  }
})();
