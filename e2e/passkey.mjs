// Browser test of Postern's passkey page, in headless Chromium with the
// Chrome DevTools Protocol's virtual WebAuthn authenticator.
//
//   node passkey.mjs <base-url> [--restart]
//
// <base-url> is the server as the browser sees it, e.g.
// http://localhost:8080 (the server must run with --session-mode cookie,
// --rp-id localhost and --origin <base-url>). With --restart the script
// prints "restart" half-way and waits for a line on stdin, so the caller
// can restart the server, then checks that the session and the passkey
// survived. Each passed step prints "ok <step>"; the last line is
// "passed: N steps" (exit 0) or "FAILED: <why>" (exit 1).
//
// Besides the page's own buttons, the script opens /v1/check by plain
// navigation (a link click, no script, no request header), as a page
// behind forward auth is opened, and replays the session cookie alone in a
// fresh browser, as a thief who copied it would.
import { createInterface } from "node:readline";
import { launchChromium, pageWithAuthenticator } from "./chromium.mjs";

const [base, ...flags] = process.argv.slice(2);
if (!base) {
  console.error("usage: node passkey.mjs <base-url> [--restart]");
  process.exit(2);
}
const restart = flags.includes("--restart");
const cookieName = process.env.POSTERN_E2E_COOKIE || "__Host-postern";
const deviceCookieName = `${cookieName}-device`;
let steps = 0;

function ok(step) {
  steps += 1;
  console.log(`ok ${step}`);
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

// Clicks a button of the page and waits for the outcome it reports.
async function act(page, button) {
  await page.click(`#${button}`);
  const status = page.locator(`#status[data-action="${button}"]:not([data-state="pending"])`);
  await status.waitFor({ timeout: 20_000 });
  return { state: await status.getAttribute("data-state"), text: await status.textContent() };
}

async function expectAct(page, button, state, pattern) {
  const { state: got, text } = await act(page, button);
  expect(got === state && pattern.test(text), `${button}: expected ${state} ${pattern}, got ${got} "${text}"`);
}

// A page whose browser tab has a virtual platform authenticator: CTAP2,
// built in, storing discoverable credentials, verifying the user.
async function sessionCookie(context) {
  return (await context.cookies(base)).find((c) => c.name === cookieName);
}

async function deviceCookie(context) {
  return (await context.cookies(base)).find((c) => c.name === deviceCookieName);
}

// Opens /v1/check in a new tab of `context` by plain navigation; returns
// the status, the user it names (X-Postern-User: a navigation does not ask
// for JSON, so a pass has no body) and, for a refusal, the JSON error body.
async function navigateToCheck(context) {
  const tab = await context.newPage();
  try {
    const response = await tab.goto(`${base}/v1/check`);
    const status = response.status();
    const user = (await response.allHeaders())["x-postern-user"];
    const body = status === 200 ? {} : await response.json();
    return { status, user, body };
  } finally {
    await tab.close();
  }
}

// A copy of `cookie` (with another value, if given) as
// `context.addCookies` takes it. By domain and path: given a `url: http://`,
// Playwright drops `Secure`, and Chromium then refuses a `__Host-` name.
function replayed(cookie, value = cookie.value) {
  return {
    name: cookie.name,
    value,
    domain: cookie.domain,
    path: cookie.path,
    httpOnly: cookie.httpOnly,
    secure: cookie.secure,
    sameSite: cookie.sameSite,
  };
}

async function waitForLine() {
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    lines.close();
    return line;
  }
  throw new Error("stdin closed before the server restarted");
}

async function main() {
  const browser = await launchChromium();
  try {
    const context = await browser.newContext();
    const { page, credentials } = await pageWithAuthenticator(context);

    await page.goto(`${base}/`);
    expect(page.url() === `${base}/login`, `/ should redirect to /login, got ${page.url()}`);
    ok("the page is served at /login");

    await page.fill("#user", "alice");
    await expectAct(page, "register", "ok", /passkey registered for alice/);
    const registered = await credentials();
    expect(registered.length === 1, `one credential expected, got ${registered.length}`);
    expect(registered[0].isResidentCredential, "the passkey should be discoverable");
    ok("a passkey is registered and is discoverable");

    expect((await sessionCookie(context)) === undefined, "no cookie before login");
    await expectAct(page, "login", "ok", /signed in as alice/);
    const cookie = await sessionCookie(context);
    expect(cookie, `login should set ${cookieName}`);
    expect(cookie.value.startsWith("pst1."), "the cookie holds a Postern token");
    expect(cookie.httpOnly && cookie.secure, "the cookie is HttpOnly and Secure");
    expect(cookie.sameSite === "Lax" && cookie.path === "/", "SameSite=Lax; Path=/");
    const lifetime = cookie.expires - Date.now() / 1000;
    expect(lifetime > 8 * 3600 - 120 && lifetime <= 8 * 3600 + 5, `Max-Age is the ttl, got ${lifetime}`);
    const visible = await page.evaluate(() => document.cookie);
    expect(!visible.includes(cookieName), "page scripts cannot read the session cookie");
    ok("login sets an HttpOnly, Secure, SameSite=Lax __Host- cookie for the session ttl");

    const device = await deviceCookie(context);
    expect(device, `login should set ${deviceCookieName}`);
    expect(/^[A-Za-z0-9_-]{43}$/.test(device.value), `a 256-bit base64url secret, got ${device.value.length} chars`);
    expect(device.httpOnly && device.secure, "the device cookie is HttpOnly and Secure");
    expect(device.sameSite === "Lax" && device.path === "/", "the device cookie is SameSite=Lax; Path=/");
    expect(Math.abs(device.expires - cookie.expires) < 2, "the device cookie lives as long as the session cookie");
    expect(!visible.includes(deviceCookieName), "page scripts cannot read the device cookie");
    ok("login sets the HttpOnly __Host- device cookie the session is bound to");

    // A link click: the browser navigates with its cookies and nothing else.
    const tab = await context.newPage();
    await tab.goto(`${base}/login`);
    await tab.evaluate(() => {
      const link = document.createElement("a");
      link.id = "to-check";
      link.href = "/v1/check";
      link.textContent = "check";
      document.body.append(link);
    });
    const [navigation] = await Promise.all([
      tab.waitForResponse(`${base}/v1/check`),
      tab.click("#to-check"),
    ]);
    const sent = navigation.request();
    expect(sent.isNavigationRequest(), "the link click is a navigation");
    expect(!("x-postern-device" in (await sent.allHeaders())), "a navigation sends no device header");
    const navigated = await navigation.allHeaders();
    expect(navigation.status() === 200, `a link to /v1/check should pass, got ${navigation.status()} ${await navigation.text()}`);
    expect(navigated["x-postern-user"] === "alice", `the check names alice, got ${JSON.stringify(navigated)}`);
    await tab.close();
    const typed = await navigateToCheck(context);
    expect(typed.status === 200 && typed.user === "alice", `navigation: ${JSON.stringify(typed)}`);
    ok("a plain navigation to /v1/check (link click, address bar) answers 200 with the user");

    // A thief who copied the session cookie alone, into another browser.
    const thief = await browser.newContext();
    await thief.addCookies([replayed(cookie)]);
    const alone = await navigateToCheck(thief);
    expect(
      alone.status === 401 && alone.body.reason === "device_mismatch",
      `the session cookie alone should be 401 device_mismatch, got ${alone.status} ${JSON.stringify(alone.body)}`,
    );
    await thief.addCookies([replayed(device, "A".repeat(43))]);
    const wrong = await navigateToCheck(thief);
    expect(
      wrong.status === 401 && wrong.body.reason === "device_mismatch",
      `a wrong device cookie should be 401 device_mismatch, got ${wrong.status} ${JSON.stringify(wrong.body)}`,
    );
    await thief.addCookies([replayed(device)]);
    const both = await navigateToCheck(thief);
    expect(both.status === 200, `with both cookies the copy passes, got ${both.status}`);
    await thief.close();
    ok("the session cookie without its device cookie is refused (401 device_mismatch)");

    await expectAct(page, "check", "ok", /signed in as alice/);
    ok("GET /v1/check with the cookie answers 200 with the user");

    // Signed in, alice may add a second passkey: another tab of the same
    // browser (same cookie) with another authenticator.
    const extra = await pageWithAuthenticator(context);
    await extra.page.goto(`${base}/login`);
    await extra.page.fill("#user", "alice");
    await expectAct(extra.page, "register", "ok", /passkey registered for alice/);
    const added = await extra.credentials();
    expect(added.length === 1, `the second authenticator should hold one passkey, got ${added.length}`);
    await extra.page.close();
    ok("a signed-in user adds a second passkey through the cookie session");

    await expectAct(page, "logout", "ok", /signed out/);
    expect((await sessionCookie(context)) === undefined, "logout clears the cookie");
    expect((await deviceCookie(context)) === undefined, "logout clears the device cookie");
    await expectAct(page, "check", "error", /^401 missing_token/);
    ok("logout clears both cookies and the check is refused");

    await page.fill("#user", "");
    await expectAct(page, "discover", "ok", /signed in as alice/);
    await expectAct(page, "check", "ok", /signed in as alice/);
    ok("a usernameless login finds alice by her discoverable passkey");

    const stranger = await browser.newContext();
    const other = await pageWithAuthenticator(stranger);
    await other.page.goto(`${base}/login`);
    await expectAct(other.page, "check", "error", /^401/);
    await other.page.fill("#user", "alice");
    await expectAct(other.page, "login", "error", /NotAllowedError|not allowed|timed out/i);
    await expectAct(other.page, "discover", "error", /NotAllowedError|not allowed|timed out/i);
    const direct = await stranger.request.get(`${base}/v1/check`);
    expect(direct.status() === 401, `a cookieless check should be 401, got ${direct.status()}`);
    expect((await sessionCookie(stranger)) === undefined, "the stranger has no session cookie");
    ok("a second browser without the passkey is refused");

    if (restart) {
      console.log("restart");
      await waitForLine();
      await page.reload();
      await expectAct(page, "check", "ok", /signed in as alice/);
      ok("the session survives a server restart");
      await page.fill("#user", "alice");
      await expectAct(page, "login", "ok", /signed in as alice/);
      ok("the passkey survives a server restart");
    }
    const [used] = await credentials();
    console.log(`signCount ${used.signCount}`);
  } finally {
    await browser.close();
  }
}

main().then(
  () => console.log(`passed: ${steps} steps`),
  (error) => {
    console.log(`FAILED: ${error.message}`);
    process.exitCode = 1;
  },
);
