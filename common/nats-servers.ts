/**
 * NATS server URLs may carry the program's credentials, `nats://user:password@host:4222` (the Helm
 * chart gives each program its own NATS user, so that only the operator may publish control
 * requests). nats.js does not read credentials from a URL: they become the `user`/`pass` connect
 * options, and the servers are passed on without them (so they never reach a log line).
 */
export interface NatsServerOptions {
  servers: string[];
  user?: string;
  pass?: string;
}

export function natsServerOptions(servers: readonly string[]): NatsServerOptions {
  let user: string | undefined;
  let pass: string | undefined;
  const bare = servers.map((s) => {
    const m = /^([a-z]+:\/\/)([^@/]*)@(.*)$/.exec(s.trim());
    if (m === null) return s.trim();
    const [name, password] = m[2].split(':');
    user ??= decodeURIComponent(name);
    if (password !== undefined) pass ??= decodeURIComponent(password);
    return m[1] + m[3];
  });
  return { servers: bare, ...(user !== undefined ? { user } : {}), ...(pass !== undefined ? { pass } : {}) };
}
