/*
 * The single-page demo: the whole login + code flow over the infobip_otp JSON
 * API (docs/api.md), in plain JavaScript without a build step.
 *
 * Every failure of the API is {"detail", "code"} (+ "attempts_left",
 * "fields"); the page shows "detail" and reacts to "code". 429 and 503 carry
 * Retry-After, which holds the buttons back. Nothing is kept in the browser
 * besides Django's session and CSRF cookies.
 */
"use strict";

(function () {
  const root = document.getElementById("spa");
  const urls = root.dataset;
  const $ = (id) => document.getElementById(id);
  const forms = { login: $("spa-login"), phone: $("spa-phone"), code: $("spa-code") };
  const errorBox = $("spa-error");
  const resendButton = $("spa-resend");
  const verifyButton = forms.code.querySelector("button[type=submit]");

  // Epoch milliseconds: when the code expires, when a resend and a new try are allowed.
  const deadlines = { expires: 0, resend: 0, retry: 0 };
  let attemptsLeft = 0;
  let loginState = "anonymous";
  let busy = false;

  function cookie(name) {
    const part = document.cookie.split("; ").find((item) => item.startsWith(name + "="));
    return part ? decodeURIComponent(part.slice(name.length + 1)) : "";
  }

  // Django rotates the CSRF token at login and again after the code, so the
  // cookie is read afresh for every call rather than once at start.
  async function api(method, url, body) {
    const headers = { Accept: "application/json" };
    if (method === "POST") {
      headers["Content-Type"] = "application/json";
      headers["X-CSRFToken"] = cookie("csrftoken");
    }
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        credentials: "same-origin",
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (exc) {
      return failure(0, { detail: "The server cannot be reached.", code: "network_error" });
    }
    let data;
    try {
      data = await response.json();
    } catch (exc) {
      data = { detail: "Unexpected answer from the server.", code: "error" };
    }
    const retryAfter = Number(response.headers.get("Retry-After")) || 0;
    return { ok: response.ok, status: response.status, data, retryAfter };
  }

  function failure(status, data) {
    return { ok: false, status, data, retryAfter: 0 };
  }

  function showOnly(name) {
    $("spa-loading").hidden = true;
    for (const [key, form] of Object.entries(forms)) form.hidden = key !== name;
    $("spa-done").hidden = name !== "done";
  }

  function clearError() {
    errorBox.hidden = true;
    errorBox.textContent = "";
  }

  // What each error code means for the page; the text is the server's "detail".
  const ON_ERROR = {
    invalid_pin: (data) => {
      attemptsLeft = data.attempts_left;
    },
    expired: () => {
      deadlines.expires = 0;
    },
    locked: () => {
      attemptsLeft = 0;
    },
    // The code is gone (locked, expired, cancelled). A login's needs a new
    // login; an enrolment starts again from the number.
    no_challenge: () => {
      if (loginState === "pending") {
        errorBox.textContent += " Sign out and sign in again to get a new code.";
      } else {
        showOnly("phone");
      }
    },
    otp_required: () => refresh(false),
    login_expired: () => refresh(false),
    // A missing or stale CSRF cookie: fetch a fresh one; the next try then passes.
    permission_denied: () => api("GET", urls.statusUrl),
    invalid_credentials: () => {
      forms.login.elements.password.value = "";
    },
  };

  function showError(result) {
    const { data } = result;
    const fieldMessages = data.fields ? Object.values(data.fields).flat() : [];
    const text = fieldMessages.length ? fieldMessages.join(" ") : data.detail;
    errorBox.textContent = `${text || "Something went wrong."} (${data.code || result.status})`;
    errorBox.hidden = false;
    if (result.retryAfter) {
      // 429 and 503: wait as long as the server asks before any new send or try.
      deadlines.retry = Date.now() + result.retryAfter * 1000;
      deadlines.resend = Math.max(deadlines.resend, deadlines.retry);
    }
    const handler = ON_ERROR[data.code];
    if (handler) handler(data);
    tick();
  }

  function showChallenge(masked, challenge) {
    if (masked) $("spa-masked").textContent = masked;
    attemptsLeft = challenge.attempts_left;
    deadlines.expires = Date.now() + challenge.expires_in * 1000;
    deadlines.resend = Date.now() + challenge.resend_in * 1000;
    forms.code.elements.pin.value = "";
    showOnly("code");
    forms.code.elements.pin.focus();
    tick();
  }

  function showDone(status) {
    $("spa-done-text").textContent =
      status.state === "verified"
        ? `You are signed in with your password and the code sent to ${status.phone || "your phone"}.`
        : "You are signed in; no code is asked of this account.";
    showOnly("done");
  }

  async function refresh(clear = true) {
    const result = await api("GET", urls.statusUrl);
    if (!result.ok) return showError(result);
    if (clear) clearError();
    const status = result.data;
    loginState = status.state;
    $("spa-signout").hidden = status.state === "anonymous";
    if (status.state === "anonymous") return showOnly("login");
    if (status.state === "pending" || status.state === "enroll") {
      if (status.challenge) return showChallenge(status.phone, status.challenge);
      // The first code of a login is sent once; a reload with a code out sends none.
      return status.state === "pending" ? sendCode() : showOnly("phone");
    }
    return showDone(status);
  }

  async function sendCode() {
    const result = await api("POST", urls.sendUrl, {});
    if (!result.ok) {
      showOnly("code");
      return showError(result);
    }
    clearError();
    showChallenge(result.data.phone, result.data);
  }

  function clock(seconds) {
    const minutes = Math.floor(seconds / 60);
    return `${minutes}:${String(seconds % 60).padStart(2, "0")}`;
  }

  function secondsUntil(deadline) {
    return Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
  }

  function tick() {
    const expires = secondsUntil(deadlines.expires);
    $("spa-expiry").textContent = expires
      ? `The code expires in ${clock(expires)}`
      : "The code has expired: request a new one";
    $("spa-attempts").textContent = `${attemptsLeft} attempt${attemptsLeft === 1 ? "" : "s"} left`;
    const resend = secondsUntil(deadlines.resend);
    resendButton.disabled = busy || resend > 0;
    $("spa-resend-wait").textContent = resend > 0 ? `available in ${resend} s` : "";
    verifyButton.disabled = busy || secondsUntil(deadlines.retry) > 0;
  }

  // One request at a time: a double click never sends two codes.
  function whileBusy(handler) {
    return async (event) => {
      event.preventDefault();
      if (busy) return;
      busy = true;
      for (const button of root.querySelectorAll("button")) button.disabled = true;
      try {
        await handler(event);
      } finally {
        busy = false;
        for (const button of root.querySelectorAll("button")) button.disabled = false;
        tick();
      }
    };
  }

  forms.login.addEventListener(
    "submit",
    whileBusy(async () => {
      const fields = forms.login.elements;
      const result = await api("POST", urls.loginUrl, {
        username: fields.username.value,
        password: fields.password.value,
      });
      if (!result.ok) return showError(result);
      fields.password.value = "";
      loginState = result.data.state;
      if (loginState === "pending") {
        $("spa-signout").hidden = false;
        $("spa-masked").textContent = result.data.phone;
        return sendCode();
      }
      return refresh();
    })
  );

  forms.phone.addEventListener(
    "submit",
    whileBusy(async () => {
      const number = forms.phone.elements.phone_number.value;
      const result = await api("POST", urls.phoneUrl, { phone_number: number });
      if (!result.ok) return showError(result);
      clearError();
      showChallenge(result.data.phone, result.data);
    })
  );

  forms.code.addEventListener(
    "submit",
    whileBusy(async () => {
      const result = await api("POST", urls.verifyUrl, { pin: forms.code.elements.pin.value });
      forms.code.elements.pin.value = "";
      if (!result.ok) return showError(result);
      return refresh();
    })
  );

  resendButton.addEventListener("click", whileBusy(sendCode));

  $("spa-signout").querySelector("button").addEventListener(
    "click",
    whileBusy(async () => {
      await fetch(urls.logoutUrl, {
        method: "POST",
        headers: { "X-CSRFToken": cookie("csrftoken") },
        credentials: "same-origin",
      });
      return refresh();
    })
  );

  setInterval(tick, 1000);
  refresh();
})();
