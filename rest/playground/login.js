// Logging in: a one-time link's code (#login=<code>), a user token, or a new
// guest while the server's sign-up is open. The token goes to sessionStorage
// (api.js) and nowhere else.

import { call, setToken } from "./api.js";
import { el } from "./render.js";

// Redeem the code of a login link, if the page was opened with one; the code
// leaves the address bar (and the history) before it is used.
export async function redeemFragment() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const code = fragment.get("login");
  if (!code) return;
  history.replaceState(null, "", location.pathname + location.search);
  const login = await call("redeemLoginCode", { code }, { api: "login" });
  setToken(login.token);
}

// The login form in `root`; `start()` opens the messenger once a token is set.
export async function loginView(root, notice, start) {
  let options = { signup: false };
  try {
    options = await call("getLoginOptions", {}, { api: "login" });
  } catch {
    // an older server: no sign-up
  }
  const again = (message) => loginView(root, message, start);
  const input = el("input", { id: "token", type: "password", autocomplete: "off", spellcheck: "false", required: true, "aria-describedby": "token-help" });
  const form = el(
    "form",
    { class: "login", "aria-label": "Log in" },
    el("h1", {}, "botgw playground"),
    el("p", {}, "Chat with bots as a user sees them."),
    notice ? el("p", { class: "notice", role: "alert" }, notice) : null,
    el("label", { for: "token" }, "User token"),
    input,
    el("p", { id: "token-help", class: "hint" }, "usr_<id>:<secret>, from botgw users create or botgw run. It stays in this tab only."),
    el("button", { type: "submit" }, "Log in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setToken(input.value.trim());
    try {
      await start();
    } catch (error) {
      setToken(null);
      again(error.message);
    }
  });
  if (options.signup) {
    form.append(
      el("div", { class: "or" }, "or"),
      el("button", {
        type: "button",
        class: "secondary",
        onclick: async () => {
          try {
            const login = await call("createUser", { name: "Guest" }, { api: "login" });
            setToken(login.token);
            await start();
          } catch (error) {
            again(error.message);
          }
        },
      }, "Create a guest user"),
    );
  }
  root.replaceChildren(form);
  input.focus();
}

