// The gateway (pg-gateway): TLS only, the IAM token as the password, then a spliced Postgres session.
import { PostgresConnection, createStartupMessage, type ClientParameters, type State } from "pg-gateway";
import { connect, createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { sourceIpOf } from "../aws/sourceIp.ts";
import { AUTHENTICATION_MESSAGE, AUTHENTICATION_OK, CANCEL_REQUEST_CODE, CANCEL_REQUEST_LENGTH, ERROR_MESSAGE, PASSWORD_MESSAGE, RDS_HOST } from "./limits.ts";
import type { TlsMaterial } from "./tls.ts";
import { IamAuthError, verifyIamToken } from "./iamToken.ts";
import type { Cluster } from "./cluster.ts";
import type { AuthFailure, RdsEndpoint, RdsEndpointOption, RdsFaults } from "./types.ts";


export interface GatewayContext {
  region: string;
  /** The id rds-db:connect ARNs name: db-… (instance), cluster-… (Aurora cluster) or prx-… (proxy). */
  resourceId: string;
  /** What the client reaches, in refusal reasons: "instance", "cluster" or "proxy". */
  serverKind: string;
  stsUrl: string;
  /** The endpoints a token may name; none: the address the client dialled. Port absent: the gateway's. */
  endpoints: RdsEndpointOption[];
  /** Aurora's reader endpoint, when it is one of `endpoints`: its sessions are read-only. */
  reader?: RdsEndpointOption;
  tls: TlsMaterial;
  cluster: Cluster;
  faults: RdsFaults;
  log: (line: string) => void;
  recordFailure(failure: AuthFailure): void;
  /** Every IAM token presented, accepted or not: the tests' leak audit looks for them. */
  recordToken(token: string): void;
}

export interface Gateway {
  port: number;
  /** The endpoints tokens may name, their ports resolved; empty when none was configured. */
  endpoints: RdsEndpoint[];
  restart(): Promise<void>;
  close(): Promise<void>;
}

/** Every socket that belongs to one client connection, torn down together. */
export type Link = Set<Socket>;

export async function startGateway(requestedPort: number, ctx: GatewayContext): Promise<Gateway> {
  const links = new Set<Link>();
  const listenOn = (port: number) => listen(port, (raw) => acceptConnection(raw, ctx, links));
  let server = await listenOn(requestedPort);
  const port = (server.address() as AddressInfo).port;
  const shutDown = async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const link of links) tearDown(link);
    links.clear();
    await closed;
  };
  return {
    port,
    endpoints: ctx.endpoints.map((e) => ({ host: e.host, port: e.port ?? port })),
    async restart() {
      await shutDown();
      server = await listenOn(port);
    },
    close: shutDown,
  };
}

export async function listen(port: number, onConnection: (socket: Socket) => void): Promise<Server> {
  const server = createServer(onConnection);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, RDS_HOST, resolve);
  });
  return server;
}

export function tearDown(link: Link): void {
  for (const socket of link) socket.destroy();
}

export function acceptConnection(raw: Socket, ctx: GatewayContext, links: Set<Link>): void {
  if (ctx.faults.dropNextConnections > 0) {
    ctx.faults.dropNextConnections -= 1;
    raw.destroy();
    return;
  }
  // Postgres's protocol is many small request/response messages: Nagle would add latency.
  raw.setNoDelay(true);
  const link: Link = new Set([raw]);
  links.add(link);
  raw.on("error", () => {}); // a reset by the client is its business; 'close' follows
  raw.once("close", () => {
    tearDown(link);
    links.delete(link);
  });
  const connection: PostgresConnection = new PostgresConnection(raw, {
    authMode: "cleartextPassword",
    tls: { key: ctx.tls.key, cert: ctx.tls.cert },
    onStartup: (state) => refuseWithoutTls(connection, raw, state),
    onMessage: (data, state) => onClientMessage(connection, raw, link, ctx, Buffer.from(data), state),
  });
}

/**
 * rds.force_ssl=1: Postgres's own pg_hba refusal for a connection without TLS, SQLSTATE 28000
 * (PostgreSQL src/backend/libpq/auth.c ClientAuthentication: a "reject" pg_hba line is
 * ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION, worded "pg_hba.conf rejects connection ...";
 * "no encryption" since PostgreSQL 14, "SSL off" before).
 */
export function refuseWithoutTls(connection: PostgresConnection, raw: Socket, state: State): boolean {
  if (state.tlsInfo) return false;
  const params = state.clientInfo?.parameters;
  const user = params?.user ?? "";
  connection.sendError({
    severity: "FATAL",
    code: "28000",
    message: `pg_hba.conf rejects connection for host "${raw.remoteAddress}", user "${user}", database "${params?.database ?? user}", no encryption`,
  });
  connection.socket.end();
  return true;
}

/**
 * pg-gateway's own password path can't be used: on failure it sends "password
 * authentication failed" (RDS says PAM), and on success it sends ReadyForQuery before
 * the backend's ParameterStatus/BackendKeyData exist. So the PasswordMessage is taken
 * here, and pg-gateway only does TLS and the startup message.
 */
export async function onClientMessage(connection: PostgresConnection, raw: Socket, link: Link, ctx: GatewayContext, data: Buffer, state: State): Promise<boolean> {
  try {
    adoptTlsSocket(connection, link);
    if (!state.hasStarted) return isCancelRequest(data) ? forwardCancelRequest(data, link, ctx) : false;
    if (state.isAuthenticated || data[0] !== PASSWORD_MESSAGE || !state.clientInfo) return false;
    await authenticateAndSplice(connection, raw, link, ctx, data, state.clientInfo.parameters, state.tlsInfo?.sniServerName);
  } catch (err) {
    ctx.log(`RDS stand-in: gateway error: ${err instanceof Error ? err.stack : String(err)}`);
    tearDown(link);
  }
  return true;
}

/** pg-gateway makes the TLS socket itself; it joins the link at its first message. */
export function adoptTlsSocket(connection: PostgresConnection, link: Link): void {
  const tls = connection.secureSocket;
  if (!tls || link.has(tls)) return;
  link.add(tls);
  tls.on("error", () => {}); // 'close' follows and tears the link down
  tls.once("close", () => tearDown(link));
}

export function isCancelRequest(data: Buffer): boolean {
  return data.length === CANCEL_REQUEST_LENGTH && data.readInt32BE(4) === CANCEL_REQUEST_CODE;
}

/** The client got the backend's own pid and key (BackendKeyData is passed through), so the request goes on verbatim. */
export function forwardCancelRequest(data: Buffer, link: Link, ctx: GatewayContext): true {
  const backend = connect(ctx.cluster.socketPath);
  backend.on("error", () => {});
  backend.end(data);
  tearDown(link);
  return true;
}

export async function authenticateAndSplice(
  connection: PostgresConnection, raw: Socket, link: Link, ctx: GatewayContext,
  data: Buffer, params: ClientParameters, sniServerName: string | undefined,
): Promise<void> {
  const user = params.user;
  const database = params.database ?? user;
  const token = readPassword(data);
  ctx.recordToken(token);
  const expected = expectedAuthority(ctx, raw, sniServerName);
  try {
    await verifyIamToken(token, {
      ...expected,
      user, region: ctx.region, resourceId: ctx.resourceId, serverKind: ctx.serverKind, stsUrl: ctx.stsUrl, admin: ctx.cluster.admin,
      sourceIp: sourceIpOf(raw),
    });
  } catch (err) {
    const reason = err instanceof IamAuthError ? err.message : `internal error: ${err instanceof Error ? err.message : String(err)}`;
    ctx.recordFailure({ at: new Date(), user, database, reason });
    // PostgreSQL src/backend/libpq/auth.c auth_failed: a failed PAM login (how RDS checks IAM
    // tokens) is ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION, 28000; 28P01 is only for
    // password, md5 and SCRAM. The message tells it apart from the no-TLS refusal's 28000.
    connection.sendError({ severity: "FATAL", code: "28000", message: `PAM authentication failed for user "${user}"` });
    connection.socket.end();
    return;
  }
  const backend = await openBackendSession(ctx.cluster.socketPath, ctx.reader && expected.endpoint === ctx.reader ? readOnly(params) : params);
  link.add(backend.socket);
  const client = connection.detach();
  if (client.destroyed) return tearDown(link);
  if (backend.kind === "refused") {
    // e.g. `database "x" does not exist` sent before authentication: pass it on as Postgres said it.
    client.end(backend.received);
    return;
  }
  splice(client, backend.socket, backend.received, link);
}

/**
 * What the token must be signed for: a configured endpoint (RDS checks its own name, so a
 * tunnel may be dialled), or else the name the client dialled (SNI; absent for IP addresses)
 * and the port it reached. Of an Aurora cluster's endpoints, the one the client named in SNI
 * (a client connects to the writer or the reader endpoint by name); without SNI, the first
 * (writer) one: which name AWS expects then is not documented, so the stricter choice.
 */
export function expectedAuthority(ctx: GatewayContext, raw: Socket, sniServerName: string | undefined): { authority: string; authorityIs: "endpoint" | "dialled"; endpoint?: RdsEndpointOption } {
  const sni = sniServerName?.toLowerCase();
  const endpoint = ctx.endpoints.find((e) => e.host.toLowerCase() === sni) ?? ctx.endpoints[0];
  if (endpoint) return { authority: `${endpoint.host}:${endpoint.port ?? raw.localPort}`, authorityIs: "endpoint", endpoint };
  return { authority: `${sniServerName ?? raw.localAddress}:${raw.localPort}`, authorityIs: "dialled" };
}

/**
 * Aurora's reader endpoint leads to a replica, where every transaction is read-only (a write
 * fails with 25006 "cannot execute … in a read-only transaction"); a Postgres session with
 * default_transaction_read_only behaves alike (Aurora User Guide, "Amazon Aurora endpoint
 * connections": the reader endpoint serves read-only connections).
 */
function readOnly(params: ClientParameters): ClientParameters {
  const option = "-c default_transaction_read_only=on";
  return { ...params, options: params.options ? `${params.options} ${option}` : option };
}

/** PasswordMessage: 'p', int32 length, the password as a NUL-terminated string. */
export function readPassword(data: Buffer): string {
  return data.subarray(5, data.length - 1).toString("utf8");
}

export type BackendSession =
  | { kind: "open"; socket: Socket; received: Buffer }
  | { kind: "refused"; socket: Socket; received: Buffer };

/**
 * Sends the client's startup parameters to Postgres as that user and waits for its first
 * message. AuthenticationOk (the trusted Unix socket) means the session is open; the bytes
 * from it on (AuthenticationOk, ParameterStatus..., BackendKeyData, ReadyForQuery) belong
 * to the client verbatim.
 */
export function openBackendSession(socketPath: string, parameters: ClientParameters): Promise<BackendSession> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let received = Buffer.alloc(0);
    const fail = (err: Error) => {
      socket.destroy();
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length < 5 || received.length < 1 + received.readInt32BE(1)) return;
      socket.off("data", onData).off("error", fail).pause();
      socket.on("error", () => {}); // from here on, 'close' tears the link down
      const type = received[0];
      if (type === AUTHENTICATION_MESSAGE && received.readInt32BE(5) === AUTHENTICATION_OK) resolve({ kind: "open", socket, received });
      else if (type === ERROR_MESSAGE) resolve({ kind: "refused", socket, received });
      else fail(new Error(`Postgres asked the gateway for authentication (message ${String.fromCharCode(type ?? 0)}): check pg_hba.conf`));
    };
    socket.on("data", onData).on("error", fail);
    socket.write(createStartupMessage({ majorVersion: 3, minorVersion: 0, parameters }));
  });
}

/** From here on the gateway only moves bytes: no per-message work, so COPY runs at socket speed. */
export function splice(client: Socket, backend: Socket, received: Buffer, link: Link): void {
  client.write(received);
  client.pipe(backend, { end: false });
  backend.pipe(client, { end: false });
  // When Postgres hangs up (a FATAL, a terminated backend), so does the server as a whole:
  // flush what it said last, then close the client's connection in both directions. Half
  // closing it would leave a client that is still sending COPY data waiting forever.
  backend.once("close", () => client.end(() => tearDown(link)));
}

