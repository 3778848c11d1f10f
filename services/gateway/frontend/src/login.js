// The login link's page: the token travels in the URL's #fragment, which the browser
// never sends to a server (so no proxy or access log holds it). Read it, forget it from
// the address bar and the history, trade it for the session cookie with a POST, and
// open the dashboard.
const message = document.getElementById("message");
const token = new URLSearchParams(location.hash.slice(1)).get("token");
history.replaceState(null, "", location.pathname);

async function signIn() {
  if (!token) {
    message.textContent = "This link carries no sign-in token: ask for a new one (gateway login-url).";
    return;
  }
  const response = await fetch("login", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ token }),
    credentials: "same-origin",
  });
  if (response.ok) {
    location.replace("./");
    return;
  }
  let reason = `the gateway answered ${response.status}`;
  try {
    reason = (await response.json()).error || reason;
  } catch {}
  message.textContent = `Sign-in failed: ${reason}.`;
}

signIn().catch((error) => {
  message.textContent = `Sign-in failed: ${error}.`;
});
