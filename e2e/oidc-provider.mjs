// A real third-party authorization server for Postern's gate mode:
// node-oidc-provider (npm `oidc-provider`, https://github.com/panva/node-oidc-provider)
// with the client-credentials grant, RFC 7662 introspection and RFC 7009
// revocation, issuing opaque access tokens.
//
//   node oidc-provider.mjs [--port N] [--cert cert.pem --key key.pem] [--ttl SECONDS] [--exit-with-stdin]
//
// With --cert and --key it serves https (the certificate must name
// 127.0.0.1), else http; on 127.0.0.1, on --port or a free port. The first
// line on stdout is "oidc-provider listening on <issuer>". It stops on
// SIGTERM or SIGINT and, with --exit-with-stdin, when its stdin closes (so
// that it never outlives the test that started it).
//
// Clients (HTTP Basic client authentication, client_secret_basic):
// - `app` / `app-secret`: an API client that obtains access tokens with the
//   client-credentials grant, e.g.
//     curl -u app:app-secret -d grant_type=client_credentials \
//          -d resource=https://api.example -d 'scope=read write' <issuer>/token
//   Its tokens name no user: the introspection answer has `client_id` and
//   no `sub` (RFC 7662 makes `sub` optional).
// - `postern` / `postern-secret`: the resource server (Postern's gate),
//   which introspects and revokes any client's tokens. Revoking another
//   client's token is refused by node-oidc-provider's default policy; the
//   gate logs tokens out upstream, so the policy here allows it for
//   `postern` alone.
//
// The resource `https://api.example` (audience `api`, scopes `read write`)
// is the API behind the gate; tokens for it are opaque and live --ttl
// seconds (default 600).
import { readFileSync } from "node:fs";
import { createServer as createHttps } from "node:https";
import { createServer as createHttp } from "node:http";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import Provider from "oidc-provider";

function flag(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

const certFile = flag("cert");
const keyFile = flag("key");
if (Boolean(certFile) !== Boolean(keyFile)) {
  console.error(
    "usage: node oidc-provider.mjs [--port N] [--cert cert.pem --key key.pem] [--ttl SECONDS] [--exit-with-stdin]",
  );
  process.exit(2);
}
const tls = certFile ? { cert: readFileSync(certFile), key: readFileSync(keyFile) } : null;
const ttl = Number(flag("ttl", "600"));
const RESOURCE = "https://api.example";

// The server listens first, so that the issuer can name its port.
const server = tls ? createHttps(tls) : createHttp();
await new Promise((resolve) => server.listen(Number(flag("port", "0")), "127.0.0.1", resolve));
const issuer = `${tls ? "https" : "http"}://127.0.0.1:${server.address().port}`;

// Signing keys made at start: nothing secret is kept on disk.
const signing = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" });

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: "app",
      client_secret: "app-secret",
      grant_types: ["client_credentials"],
      redirect_uris: [],
      response_types: [],
      scope: "read write",
    },
    {
      client_id: "postern",
      client_secret: "postern-secret",
      grant_types: [],
      redirect_uris: [],
      response_types: [],
    },
  ],
  jwks: { keys: [{ ...signing, use: "sig", kid: "k1" }] },
  cookies: { keys: [randomBytes(32).toString("hex")] },
  scopes: ["openid", "read", "write"],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: {
      enabled: true,
      allowedPolicy: async (_ctx, client, token) =>
        client.clientId === "postern" || client.clientId === token.clientId,
    },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => RESOURCE,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resource) => {
        if (resource !== RESOURCE) {
          throw new Provider.errors.InvalidTarget();
        }
        return { scope: "read write", audience: "api", accessTokenFormat: "opaque", accessTokenTTL: ttl };
      },
    },
  },
  ttl: { ClientCredentials: ttl },
});

server.on("request", provider.callback());
console.log(`oidc-provider listening on ${issuer}`);

function stop() {
  server.close();
  server.closeAllConnections();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
if (process.argv.includes("--exit-with-stdin")) {
  process.stdin.on("end", stop);
  process.stdin.resume();
}
