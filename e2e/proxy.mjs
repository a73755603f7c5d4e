// A browser behind a forward-auth proxy (nginx auth_request, Caddy
// forward_auth): headless Chromium with the Chrome DevTools Protocol's
// virtual WebAuthn authenticator signs in with a passkey on Postern's page,
// served through the proxy, then opens a protected page of the application
// behind it by plain navigation (a link click: cookies, no script header).
//
//   node proxy.mjs <proxy-base-url> <protected-path>
//
// <proxy-base-url> is the proxy as the browser sees it, e.g.
// http://localhost:8000 (Postern must run with --session-mode cookie,
// --rp-id localhost and --origin <proxy-base-url>). The script reports, one
// JSON object per line, what it saw; the caller judges it:
//   {"step":"signed_in","cookies":[names]}
//   {"step":"navigation","status":N,"body":...,"device_header":bool}
//   {"step":"signed_out","cookies":[names]}
//   {"step":"replayed_after_logout","status":N,"body":...}
// then "done" (exit 0), or "FAILED: <why>" (exit 1) if the page itself
// failed. Run by crates/postern-server/tests/proxies.rs.
import { launchChromium, pageWithAuthenticator } from "./chromium.mjs";

const [base, protectedPath] = process.argv.slice(2);
if (!base || !protectedPath) {
  console.error("usage: node proxy.mjs <proxy-base-url> <protected-path>");
  process.exit(2);
}

function report(step, fields) {
  console.log(JSON.stringify({ step, ...fields }));
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

// Clicks a button of the page and waits for the outcome it reports.
async function expectAct(page, button, pattern) {
  await page.click(`#${button}`);
  const status = page.locator(`#status[data-action="${button}"]:not([data-state="pending"])`);
  await status.waitFor({ timeout: 20_000 });
  const state = await status.getAttribute("data-state");
  const text = await status.textContent();
  expect(state === "ok" && pattern.test(text), `${button}: expected ok ${pattern}, got ${state} "${text}"`);
}

// The body of a response: JSON when it is, else its text (nginx's own
// error pages are HTML).
async function bodyOf(response) {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

// Opens `path` in a new tab of `context` by a link click; returns the
// navigation's status, body and whether it carried X-Postern-Device.
async function clickThrough(context, path) {
  const tab = await context.newPage();
  try {
    await tab.goto(`${base}/login`);
    await tab.evaluate((href) => {
      const link = document.createElement("a");
      link.id = "protected";
      link.href = href;
      link.textContent = "protected";
      document.body.append(link);
    }, path);
    const [response] = await Promise.all([
      tab.waitForResponse((r) => r.url() === `${base}${path}`),
      tab.click("#protected"),
    ]);
    const sent = response.request();
    expect(sent.isNavigationRequest(), "the link click is a navigation");
    return {
      status: response.status(),
      body: await bodyOf(response),
      device_header: "x-postern-device" in (await sent.allHeaders()),
    };
  } finally {
    await tab.close();
  }
}

// A copy of `cookie` as `context.addCookies` takes it, by domain and path
// (given a `url: http://`, Playwright drops `Secure`, and Chromium then
// refuses a `__Host-` name).
function replayed(cookie) {
  const { name, value, domain, path, httpOnly, secure, sameSite } = cookie;
  return { name, value, domain, path, httpOnly, secure, sameSite };
}

async function main() {
  const browser = await launchChromium();
  try {
    const context = await browser.newContext();
    const { page } = await pageWithAuthenticator(context);

    // Postern's page and API, through the proxy, on the proxy's origin.
    await page.goto(`${base}/login`);
    await page.fill("#user", "alice");
    await expectAct(page, "register", /passkey registered for alice/);
    await expectAct(page, "login", /signed in as alice/);
    const cookies = await context.cookies(base);
    report("signed_in", { cookies: cookies.map((c) => c.name).sort() });

    report("navigation", await clickThrough(context, protectedPath));

    await expectAct(page, "logout", /signed out/);
    report("signed_out", { cookies: (await context.cookies(base)).map((c) => c.name).sort() });

    // The same session, its cookies put back as a thief who copied them
    // before the logout would: revoked, so refused at the proxy.
    await context.addCookies(cookies.map(replayed));
    const { status, body } = await clickThrough(context, protectedPath);
    report("replayed_after_logout", { status, body });
  } finally {
    await browser.close();
  }
}

main().then(
  () => console.log("done"),
  (error) => {
    console.log(`FAILED: ${error.message}`);
    process.exitCode = 1;
  },
);
