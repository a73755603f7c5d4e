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
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const [base, ...flags] = process.argv.slice(2);
if (!base) {
  console.error("usage: node passkey.mjs <base-url> [--restart]");
  process.exit(2);
}
const restart = flags.includes("--restart");
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const cookieName = process.env.POSTERN_E2E_COOKIE || "__Host-postern";
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
async function pageWithAuthenticator(context) {
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable", { enableUI: false });
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      ctap2Version: "ctap2_1",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  const credentials = async () =>
    (await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials;
  return { page, credentials };
}

async function sessionCookie(context) {
  return (await context.cookies(base)).find((c) => c.name === cookieName);
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
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    // Root in a container has no user namespace for Chromium's sandbox.
    args: ["--no-sandbox"],
  });
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
    await expectAct(page, "check", "error", /^401 missing_token/);
    ok("logout clears the cookie and the check is refused");

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
