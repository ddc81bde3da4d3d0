'use strict';
// pytest-etcd-discovery: loaded into a Node.js process by `etcd_discovery.env()`
// (NODE_OPTIONS=--require <this file>).
//
// Node (at least up to 20) ignores HTTPS_PROXY, so `https.get` and `fetch` would look the
// discovery hosts up in DNS and go to the public service.  This file sends the TCP
// connections for the discovery hosts, and nothing else, to the fake's front on loopback:
//
// - every TCP connection Node makes goes through `net.Socket.prototype.connect`:
//   `net.connect`/`net.createConnection`, the `http.Agent` (which holds its own reference
//   to `net.createConnection`), `tls.connect` (which connects its TLSSocket itself) and so
//   `https.get`/`https.request`, and the global `fetch` (undici's connector calls
//   `tls.connect`/`net.connect`).  Patching that one method covers them all;
// - only the host connected to changes: the TLS layer above keeps the discovery host as
//   its server name, so the front's certificate is verified for that name against the
//   test CA (NODE_EXTRA_CA_CERTS), and the HTTP layer keeps its Host header;
// - a connection over an existing socket (`tls.connect({socket})`, as a proxy tunnel does,
//   e.g. NODE_USE_ENV_PROXY on a Node that has it), a Unix socket, and every other host
//   are left alone;
// - a discovery host on a port the fake does not serve fails with an error saying so,
//   instead of leaving the machine.
//
// Read from the environment env() sets (nothing happens without them):
//   PYTEST_ETCD_DISCOVERY_FRONT  host:port of the front ([v6]:port for IPv6)
//   PYTEST_ETCD_DISCOVERY_HOSTS  the discovery base URLs, comma-separated

(function install() {
  const front = process.env.PYTEST_ETCD_DISCOVERY_FRONT;
  const hosts = process.env.PYTEST_ETCD_DISCOVERY_HOSTS;
  if (!front || !hosts) {
    return;
  }
  const net = require('node:net');
  const marker = Symbol.for('pytest-etcd-discovery.node-preload');
  if (net.Socket.prototype[marker]) {
    return; // loaded twice (NODE_OPTIONS named it twice): patch once
  }

  const canonical = (host) =>
    String(host).trim().replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase();

  const frontUrl = new URL(`http://${front}`);
  const frontHost = canonical(frontUrl.hostname);
  const frontPort = Number(frontUrl.port);

  // "name:port" -> the base URL served there; name -> every base URL of that name.
  const served = new Map();
  const byName = new Map();
  for (const entry of hosts.split(',')) {
    if (!entry.trim()) {
      continue;
    }
    const url = new URL(entry.trim());
    const name = canonical(url.hostname);
    const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
    const base = `${url.protocol}//${url.host}`;
    served.set(`${name}:${port}`, base);
    byName.set(name, [...(byName.get(name) || []), base]);
  }

  // What a connect() call asks for, as net.Socket.prototype.connect reads its arguments:
  // (options[, cb]), (port[, host][, cb]), (path[, cb]), or the internal normalized array.
  function requested(args) {
    let first = args[0];
    if (Array.isArray(first)) {
      first = first[0]; // net.connect() hands its normalized [options, cb] on
    }
    if (first !== null && typeof first === 'object') {
      if (first.path != null) {
        return null;
      }
      return { host: first.host, port: first.port, options: first };
    }
    if (typeof first === 'string' && Number.isNaN(Number(first))) {
      return null; // a Unix socket path
    }
    return { host: typeof args[1] === 'string' ? args[1] : undefined, port: first, options: null };
  }

  function callback(args) {
    if (Array.isArray(args[0])) {
      return args[0][1];
    }
    const last = args[args.length - 1];
    return typeof last === 'function' ? last : undefined;
  }

  const connect = net.Socket.prototype.connect;
  function redirectingConnect(...args) {
    const want = requested(args);
    if (want === null || want.host == null) {
      return connect.apply(this, args); // a path, or "localhost" by default
    }
    const name = canonical(want.host);
    if (!byName.has(name)) {
      return connect.apply(this, args); // not a discovery host: untouched
    }
    const port = Number(want.port);
    const cb = callback(args);
    if (!served.has(`${name}:${port}`)) {
      const error = new Error(
        `etcd discovery fake: ${name}:${want.port} is a discovery host but the fake serves ` +
          `only ${byName.get(name).join(', ')}; add the URL to etcd_discovery_hosts to serve it`,
      );
      error.code = 'ECONNREFUSED';
      process.nextTick(() => this.destroy(error));
      return this;
    }
    // The front's address instead of the name's; everything else as asked.  A host that is
    // an IP address needs no lookup, so none of the name's leaves the machine.
    const options = { ...(want.options || {}), host: frontHost, port: frontPort };
    delete options.lookup;
    return cb === undefined ? connect.call(this, options) : connect.call(this, options, cb);
  }
  Object.defineProperty(net.Socket.prototype, marker, { value: true });
  net.Socket.prototype.connect = redirectingConnect;
})();
