/**
 * Test support: the load balancer in front of several coordinators, as a TCP proxy. Each new
 * connection goes to the backend `target()` names (the test asks Redis who holds the active
 * lease, as a real balancer's health check asks each coordinator whether it serves), and
 * connections to a backend that is no longer the target are cut, as a health check removing it
 * would make happen (devices then reconnect to the new one).
 *
 * With `spreadSources`, each connection to a backend comes from its own loopback address
 * (127.1.x.y, in turn), as from a balancer that keeps the devices' own addresses: the
 * coordinator bounds connections per source address, and hundreds of devices behind one
 * address would be refused past that bound.
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";

export class TcpProxy {
  private readonly open = new Set<{ port: number; a: Socket; b: Socket }>();
  private timer: NodeJS.Timeout | undefined;

  private constructor(private readonly server: Server, readonly port: number) {}

  static async start(target: () => Promise<number | undefined>, o: { spreadSources?: boolean } = {}): Promise<TcpProxy> {
    let proxy!: TcpProxy;
    let next = 0;
    const source = (): { localAddress?: string } => {
      if (!o.spreadSources) return {};
      const i = next++ % 62_500;
      return { localAddress: `127.1.${Math.floor(i / 250)}.${1 + (i % 250)}` };
    };
    const server = createServer((a) => {
      a.on("error", () => undefined);
      target().then((port) => {
        if (port === undefined) return a.destroy();
        const b = createConnection({ host: "127.0.0.1", port, ...source() });
        b.on("error", () => a.destroy());
        a.on("close", () => b.destroy());
        b.on("close", () => a.destroy());
        a.pipe(b).pipe(a);
        const conn = { port, a, b };
        proxy.open.add(conn);
        b.on("close", () => proxy.open.delete(conn));
      }, () => a.destroy());
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    proxy = new TcpProxy(server, (server.address() as { port: number }).port);
    proxy.timer = setInterval(() => {
      void target().then((port) => {
        for (const c of proxy.open) if (c.port !== port) c.b.destroy();
      }, () => undefined);
    }, 500);
    return proxy;
  }

  /** Drops every open connection, as a load balancer that lost its frontend would (the backends stay). */
  cutAll(): number {
    const n = this.open.size;
    for (const c of this.open) {
      c.a.destroy();
      c.b.destroy();
    }
    return n;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    for (const c of this.open) c.b.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
