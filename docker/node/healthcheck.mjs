// HEALTHCHECK of the vault node image: GET /healthz on the address the node listens on
// (HSM_VAULT_LISTEN: "host:port", ":port", "[v6]:port" or "port"); wildcard hosts mean loopback.
const listen = process.env.HSM_VAULT_LISTEN ?? '0.0.0.0:8080';
const match = /^(?:\[([^\]]*)\]|([^:]*)):(\d+)$/.exec(listen) ?? /^()()(\d+)$/.exec(listen);
if (!match) {
  console.error(`healthcheck: cannot read HSM_VAULT_LISTEN=${listen}`);
  process.exit(1);
}
const host = match[1] ?? match[2] ?? '';
const port = match[3];
const target = host === '' || host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '[::1]' : host.includes(':') ? `[${host}]` : host;
try {
  const res = await fetch(`http://${target}:${port}/healthz`, { signal: AbortSignal.timeout(4000) });
  if (!res.ok) {
    console.error(`healthcheck: /healthz answered ${res.status}`);
    process.exit(1);
  }
} catch (err) {
  console.error(`healthcheck: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
